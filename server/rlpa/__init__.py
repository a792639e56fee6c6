"""The contract between RLPA checkpoints and the gateway: how prompts are built and outputs read.

Training imports these same functions, so a checkpoint and the gateway can never disagree.
Changing the prompt or the output format means bumping CONTRACT_VERSION: it is written into every
exported checkpoint and checked when one is loaded.
"""

from server.rlpa.change import ProfileChange, change_from_rewrite
from server.rlpa.grammar import FORMAT_GBNF
from server.rlpa.parse import ParsedOutput, parse_output
from server.rlpa.prompt import SYSTEM_PROMPT, build_messages, render_output, render_profile
from server.rlpa.stream import SplitEvent, StreamSplitter
from server.rlpa.traits import (
    MAX_TRAIT_CHARS,
    MAX_TRAITS,
    TraitError,
    normalize_traits,
    validate_traits,
)

CONTRACT_VERSION: int = 1

__all__ = [
    "CONTRACT_VERSION",
    "FORMAT_GBNF",
    "MAX_TRAITS",
    "MAX_TRAIT_CHARS",
    "SYSTEM_PROMPT",
    "ParsedOutput",
    "ProfileChange",
    "SplitEvent",
    "StreamSplitter",
    "TraitError",
    "build_messages",
    "change_from_rewrite",
    "normalize_traits",
    "parse_output",
    "render_output",
    "render_profile",
    "validate_traits",
]
