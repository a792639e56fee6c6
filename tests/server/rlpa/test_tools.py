"""Tool calls and JSON replies in the RLPA format: the grammar (checked by llama.cpp's own grammar
sampler, as test_grammar checks the plain one), the prompt, and reading calls back."""

from __future__ import annotations

import ctypes
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server import rlpa
from server.backends import default_gguf_path
from server.openai import protocol as p
from server.openai import tools as wire_tools

llama_cpp = pytest.importorskip("llama_cpp")

# A chat request as Open WebUI sends it, with its 28 built-in tools.
OPEN_WEBUI = Path(__file__).parents[2] / "fixtures/open_webui_chat_with_tools.json"
WEATHER = rlpa.Tool(
    name="get_weather",
    description="Get the weather.\nMore text the prompt leaves out.",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
        },
        "required": ["city"],
    },
)
NOW = rlpa.Tool(name="now", parameters={"type": "object", "properties": {}})
TOOLS = rlpa.ToolUse(tools=(WEATHER, NOW))
BLOCK = "<profile>\n- lives in Lyon\n</profile>\n\n"


@pytest.fixture(scope="module")
def vocab_model() -> Iterator[Any]:
    model = llama_cpp.Llama(default_gguf_path(), vocab_only=True, verbose=False)
    yield model
    model.close()


def _allowed(sampler: Any, token: int) -> bool:
    data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
    candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
    return not math.isinf(data[0].logit)


def admits(model: Any, grammar: str, text: str) -> bool:
    sampler = llama_cpp.llama_sampler_init_grammar(model._model.vocab, grammar.encode(), b"root")
    assert sampler, "llama.cpp could not parse the grammar"
    try:
        for token in model.tokenize(text.encode(), add_bos=False, special=False):
            if not _allowed(sampler, token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return _allowed(sampler, model.token_eos())
    finally:
        llama_cpp.llama_sampler_free(sampler)


def call(name: str, arguments: dict[str, Any]) -> str:
    return rlpa.render_tool_calls([(name, json.dumps(arguments))])


def test_a_plain_turn_keeps_the_plain_grammar() -> None:
    assert rlpa.output_grammar() == rlpa.FORMAT_GBNF


@pytest.mark.parametrize(
    ("answer", "admitted"),
    [
        ("<response>\nIt is sunny in Lyon.\n</response>", True),
        (call("get_weather", {"city": "Lyon"}), True),
        (call("get_weather", {"city": "Lyon", "unit": "celsius", "days": 2}), True),
        (call("get_weather", {"city": "Lyon", "days": 2}), True),  # an optional key left out
        (call("get_weather", {"city": "Lyon"}) + "\n" + call("now", {}), True),  # in parallel
        (call("now", {}), True),
        (call("get_weather", {"unit": "celsius"}), False),  # a required key missing
        (call("get_weather", {"days": 2, "city": "Lyon"}), False),  # keys in the schema's order
        (call("get_weather", {"city": "Lyon", "unit": "kelvin"}), False),  # not in the enum
        (call("get_weather", {"city": "Lyon", "mood": "ok"}), False),  # a key not in the schema
        (call("get_weather", {"city": 7}), False),
        (call("now", {"x": 1}), False),  # `"properties": {}`: no arguments
        (call("delete_everything", {}), False),
        # `</` could close the block the string is in: JSON writes it `<\/`.
        (call("get_weather", {"city": "a</tool_call>"}), False),
        (
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "<\\/b>"}}\n</tool_call>',
            True,
        ),
    ],
)
def test_the_tool_grammar_admits_the_block_then_a_reply_or_valid_calls(
    vocab_model: Any, answer: str, admitted: bool
) -> None:
    assert admits(vocab_model, rlpa.output_grammar(tools=TOOLS), BLOCK + answer) is admitted


def test_tool_choice_shapes_the_grammar(vocab_model: Any) -> None:
    reply = BLOCK + "<response>\nHello.\n</response>"
    weather, now = BLOCK + call("get_weather", {"city": "Lyon"}), BLOCK + call("now", {})
    required = rlpa.output_grammar(tools=rlpa.ToolUse(tools=TOOLS.tools, required=True))
    assert not admits(vocab_model, required, reply)
    assert admits(vocab_model, required, weather)
    named = rlpa.output_grammar(tools=rlpa.ToolUse(tools=TOOLS.tools, required=True, only="now"))
    assert admits(vocab_model, named, now) and not admits(vocab_model, named, weather)
    single = rlpa.output_grammar(tools=rlpa.ToolUse(tools=TOOLS.tools, parallel=False))
    assert admits(vocab_model, single, weather)
    assert not admits(vocab_model, single, weather + "\n" + call("now", {}))


def test_a_turn_that_answers_tool_results_writes_an_empty_block(vocab_model: Any) -> None:
    grammar = rlpa.output_grammar(tools=TOOLS, learn=False)
    assert admits(vocab_model, grammar, "<profile>\n</profile>\n\n<response>\nSunny.\n</response>")
    assert not admits(vocab_model, grammar, BLOCK + "<response>\nSunny.\n</response>")


DISH = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "minutes": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "minutes"],
}


@pytest.mark.parametrize(
    ("reply", "schema", "admitted"),
    [
        ({"name": "dal", "minutes": 30}, DISH, True),
        ({"name": "dal", "minutes": 30, "tags": ["vegan", "quick"], "note": None}, DISH, True),
        ({"name": "dal", "minutes": 30, "tags": ["a", "b", "c"]}, DISH, False),  # maxItems
        ({"name": "dal"}, DISH, False),
        ({"minutes": 3.5, "name": "dal"}, DISH, False),
        ({"anything": [1, {"x": None}]}, None, True),  # json_object: any object
        ([1, 2], None, False),
    ],
)
def test_a_json_reply_is_held_to_its_schema_after_the_block(
    vocab_model: Any, reply: Any, schema: dict[str, Any] | None, admitted: bool
) -> None:
    grammar = rlpa.output_grammar(reply=rlpa.JsonReply(schema=schema))
    output = rlpa.render_output(["is vegan"], json.dumps(reply))
    assert admits(vocab_model, grammar, output) is admitted


def test_pydantic_schemas_with_refs_and_recursion_compile(vocab_model: Any) -> None:
    # What with_structured_output sends for a model that nests another, and a recursive one.
    schema = {
        "$defs": {
            "Step": {
                "properties": {"text": {"type": "string"}, "then": {"$ref": "#/$defs/Step"}},
                "required": ["text"],
                "type": "object",
            }
        },
        "properties": {"first": {"$ref": "#/$defs/Step"}},
        "required": ["first"],
        "type": "object",
    }
    grammar = rlpa.output_grammar(reply=rlpa.JsonReply(schema=schema))
    steps = {"first": {"text": "boil", "then": {"text": "serve"}}}
    assert admits(vocab_model, grammar, rlpa.render_output([], json.dumps(steps)))
    assert not admits(vocab_model, grammar, rlpa.render_output([], json.dumps({"first": {}})))


def test_open_webuis_built_in_tools_make_one_grammar_llama_cpp_reads(vocab_model: Any) -> None:
    request = p.ChatCompletionRequest.model_validate(json.loads(OPEN_WEBUI.read_text())["body"])
    tools = wire_tools.tool_use(request)
    assert tools is not None and len(tools.tools) >= 22
    grammar = rlpa.output_grammar(tools=tools)
    search = call("search_notes", {"query": "hiking"})
    assert admits(vocab_model, grammar, BLOCK + search)
    assert admits(vocab_model, grammar, BLOCK + "<response>\nHi!\n</response>")
    # One signature line per tool: the 28 schemas would not fit the embedded model's context.
    system = rlpa.build_messages(wire_tools.history(request), None, 2, tools=tools)[0]["content"]
    assert "- search_notes(" in system and '"properties"' not in system


def test_the_prompt_lists_the_tools_and_shows_calls_and_results_as_hermes_does() -> None:
    history = [
        {"role": "user", "content": "Weather in Lyon?"},
        {"role": "assistant", "content": "", "tool_calls": call("get_weather", {"city": "Lyon"})},
        {"role": "tool", "content": '{"sky": "sunny"}'},
        {"role": "tool", "content": '{"wind": "calm"}'},
    ]
    messages = rlpa.build_messages(history, ["lives in Lyon"], 2, tools=TOOLS)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "- get_weather(city: string, unit?: " in messages[0]["content"]
    assert "More text" not in messages[0]["content"]  # a description's first line only
    assert messages[2]["content"] == call("get_weather", {"city": "Lyon"})
    assert messages[3]["content"] == (
        '<tool_response>\n{"sky": "sunny"}\n</tool_response>\n'
        '<tool_response>\n{"wind": "calm"}\n</tool_response>'
    )


OUTPUT = BLOCK + call("get_weather", {"city": "Lyon"}) + "\n" + call("now", {})


def test_calls_are_read_whole_however_the_stream_is_cut() -> None:
    parsed = rlpa.parse_output(OUTPUT, tools=True)
    assert parsed.profile == ["lives in Lyon"] and parsed.response == "" and parsed.format_ok
    assert [rlpa.read_tool_call(text, TOOLS) for text in parsed.tool_calls] == [
        ("get_weather", '{"city": "Lyon"}'),
        ("now", "{}"),
    ]
    for cut in range(1, len(OUTPUT)):
        splitter = rlpa.StreamSplitter(tools=True)
        events = [splitter.feed(OUTPUT[:cut]), splitter.feed(OUTPUT[cut:]), splitter.finish()]
        assert [c for e in events for c in e.calls] == list(parsed.tool_calls), cut
        assert "".join(e.text for e in events) == ""


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ('{"name": "now", "arguments": {}}', ("now", "{}")),
        ('{"name": "now", "arguments": "{}"}', ("now", "{}")),  # arguments as a JSON string
        ('{"name": "now"}', ("now", "{}")),
        ('{"name": "rm", "arguments": {}}', None),  # not offered
        ('{"name": "now", "arguments": [1]}', None),
        ('{"name": "now", "argu', None),  # cut
    ],
)
def test_a_call_is_read_only_for_an_offered_tool(text: str, read: tuple[str, str] | None) -> None:
    assert rlpa.read_tool_call(text, TOOLS) == read


def test_without_tools_a_tool_call_tag_is_not_read() -> None:
    parsed = rlpa.parse_output(OUTPUT)
    assert parsed.tool_calls == () and "<tool_call>" in parsed.response
