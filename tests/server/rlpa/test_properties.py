"""The headline guarantees, for any output and any way the stream is cut."""

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from server import rlpa
from server.rlpa.traits import ASCII_LOWER

FAST = settings(max_examples=300, deadline=None)

FRAGMENTS = [
    "<profile>",
    "</profile>",
    "<response>",
    "</response>",
    "<PROFILE>",
    "</Response>",
    "<",
    "</",
    "<pro",
    "</res",
    "<respons",
    "\u017f",
    ">",
    "\n",
    "\n\n",
    " ",
    "\t",
    "- ",
    "* ",
    "1. ",
]
WORDS = st.text(alphabet="abcXYZ <>/-*\n ", min_size=1, max_size=8)
OUTPUTS = st.lists(st.one_of(st.sampled_from(FRAGMENTS), WORDS), max_size=30).map("".join)


def valid(traits: list[str]) -> bool:
    try:
        rlpa.validate_traits(traits)
    except rlpa.TraitError:
        return False
    return True


# Characters a validated trait may hold: no control, format, surrogate or line-breaking ones.
TRAIT_CHARS = st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))
TRAITS = st.lists(
    st.one_of(
        st.text(TRAIT_CHARS, min_size=1, max_size=40),
        st.sampled_from(["- x", "1. y", "<", "<profile", "a </response"]),
    ),
    max_size=8,
).filter(valid)
# Any text but the reply's end; `<` and the other tags included.
REPLIES = (
    st.lists(
        st.one_of(
            st.text(max_size=8), st.sampled_from(["<", "</", "<profile>", "</profile>", "</resp"])
        ),
        max_size=10,
    )
    .map("".join)
    .filter(lambda reply: "</response>" not in reply.translate(ASCII_LOWER))
)


def cuts(data: st.DataObject, text: str) -> list[str]:
    points = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def stream(chunks: Sequence[str]) -> tuple[str, rlpa.StreamSplitter, list[list[str]]]:
    splitter = rlpa.StreamSplitter()
    events = [splitter.feed(chunk) for chunk in chunks]
    events.append(splitter.finish())
    profiles = [event.profile for event in events if event.profile is not None]
    return "".join(event.text for event in events), splitter, profiles


def assert_splitter_agrees(text: str, chunks: Sequence[str]) -> None:
    parsed = rlpa.parse_output(text)
    visible, splitter, profiles = stream(chunks)
    assert visible == parsed.response == splitter.response
    assert splitter.profile == parsed.profile
    assert splitter.format_ok == parsed.format_ok
    assert profiles == ([] if parsed.profile is None else [parsed.profile])


@FAST
@given(OUTPUTS, st.data())
def test_splitter_agrees_with_parse_output_however_the_stream_is_cut(
    text: str, data: st.DataObject
) -> None:
    assert_splitter_agrees(text, cuts(data, text))


@FAST
@given(st.text(max_size=40))
def test_splitter_agrees_with_parse_output_one_character_at_a_time(text: str) -> None:
    assert_splitter_agrees(text, list(text))


@FAST
@given(TRAITS, REPLIES, st.data())
def test_well_formed_output_round_trips(traits: list[str], reply: str, data: st.DataObject) -> None:
    clean = rlpa.validate_traits(traits)
    text = rlpa.render_output(clean, reply)
    expected = rlpa.ParsedOutput(clean, reply.strip(), True)
    assert rlpa.parse_output(text) == expected
    visible, splitter, _ = stream(cuts(data, text))
    assert (splitter.profile, visible, splitter.format_ok) == (clean, reply.strip(), True)


@FAST
@given(
    st.lists(st.text(alphabet="abc -*1.", max_size=10), max_size=5),
    st.text(alphabet="abcdef \n", max_size=40),
    st.sets(st.sampled_from(["</profile>", "<response>", "</response>", "\n"])),
    st.data(),
)
def test_profile_text_never_reaches_the_reply_when_output_is_malformed(
    filler: list[str], reply: str, dropped: set[str], data: st.DataObject
) -> None:
    # Upper-case markers cannot come from the lower-case reply alphabet.
    markers = [f"MARK{i}" for i in range(len(filler) + 1)]
    traits = [f"{fill} {marker}" for fill, marker in zip(filler, markers, strict=False)]
    text = rlpa.render_output([*traits, markers[-1]], reply)
    for tag in dropped:
        text = text.replace(tag, "")
    text = text[: data.draw(st.integers(0, len(text)))]
    if data.draw(st.booleans()):
        text = text.replace("<profile>", data.draw(st.sampled_from(["<PROFILE>", "<Profile>"])))
    visible, _, _ = stream(cuts(data, text))
    assert "MARK" not in rlpa.parse_output(text).response
    assert "MARK" not in visible


TOOL_OUTPUTS = st.lists(
    st.one_of(
        st.sampled_from([*FRAGMENTS, "<tool_call>", "</tool_call>", "<TOOL_CALL>", "<tool_"]),
        st.sampled_from(['{"name": "f", "arguments": {}}', '"</', "\n"]),
        WORDS,
    ),
    max_size=30,
).map("".join)


@FAST
@given(TOOL_OUTPUTS, st.data())
def test_with_tools_the_splitter_reads_the_same_calls_and_reply_as_parse_output(
    text: str, data: st.DataObject
) -> None:
    parsed = rlpa.parse_output(text, tools=True)
    splitter = rlpa.StreamSplitter(tools=True)
    events = [splitter.feed(chunk) for chunk in cuts(data, text)]
    events.append(splitter.finish())
    assert "".join(event.text for event in events) == parsed.response
    assert [call for event in events for call in event.calls] == list(parsed.tool_calls)
    assert (splitter.profile, splitter.format_ok) == (parsed.profile, parsed.format_ok)
