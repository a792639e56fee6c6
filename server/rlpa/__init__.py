"""The contract between RLPA checkpoints and the gateway: how prompts are built and outputs read.

Training imports these same functions, so a checkpoint and the gateway can never disagree.
Changing the prompt or the output format means bumping CONTRACT_VERSION: it is written into every
exported checkpoint and checked when one is loaded.
"""

from server.rlpa.change import (
    ProfileChange,
    apply_block,
    change_from_block,
    change_from_rewrite,
    profile_change,
    render_change,
)
from server.rlpa.grammar import FORMAT_GBNF, output_grammar, said_words
from server.rlpa.parse import ParsedOutput, parse_output
from server.rlpa.prompt import (
    SYSTEM_PROMPT,
    SYSTEM_PROMPT_V2,
    build_messages,
    render_output,
    render_profile,
)
from server.rlpa.stream import SplitEvent, StreamSplitter
from server.rlpa.tools import (
    JsonReply,
    Tool,
    ToolUse,
    read_tool_call,
    render_tool_calls,
)
from server.rlpa.traits import (
    MAX_TRAIT_CHARS,
    MAX_TRAITS,
    TraitError,
    normalize_traits,
    validate_traits,
)

# Contract v2: the block lists only what the turn changes; `- forget: trait` drops a trait.
# v1 (the paper's full rewrite) stays supported for checkpoints that declare it.
LATEST_VERSION: int = 2
SUPPORTED_VERSIONS: tuple[int, ...] = (1, 2)
# The version training renders and exports by default (a recipe may pin another).
CONTRACT_VERSION: int = LATEST_VERSION

__all__ = [
    "CONTRACT_VERSION",
    "FORMAT_GBNF",
    "LATEST_VERSION",
    "MAX_TRAITS",
    "MAX_TRAIT_CHARS",
    "SUPPORTED_VERSIONS",
    "SYSTEM_PROMPT",
    "SYSTEM_PROMPT_V2",
    "JsonReply",
    "ParsedOutput",
    "ProfileChange",
    "SplitEvent",
    "StreamSplitter",
    "Tool",
    "ToolUse",
    "TraitError",
    "apply_block",
    "build_messages",
    "change_from_block",
    "change_from_rewrite",
    "normalize_traits",
    "output_grammar",
    "parse_output",
    "profile_change",
    "read_tool_call",
    "render_change",
    "render_output",
    "render_profile",
    "render_tool_calls",
    "said_words",
    "validate_traits",
]
