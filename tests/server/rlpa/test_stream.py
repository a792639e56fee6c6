import time
from collections.abc import Sequence

import pytest

from server import rlpa


def split(chunks: Sequence[str]) -> tuple[list[rlpa.SplitEvent], rlpa.StreamSplitter]:
    splitter = rlpa.StreamSplitter()
    events = [splitter.feed(chunk) for chunk in chunks]
    events.append(splitter.finish())
    return events, splitter


def texts(events: Sequence[rlpa.SplitEvent]) -> list[str]:
    return [event.text for event in events]


def test_stream_splitter_sends_the_reply_and_keeps_the_profile_back() -> None:
    chunks = [
        "<profile>\n- likes jazz\n</pro",
        "file>\n\n<response>\nHi",
        " there\n",
        "</response>",
    ]
    events, splitter = split(chunks)
    assert texts(events) == ["", "Hi", " there", "", ""]
    assert [e.profile for e in events] == [None, ["likes jazz"], None, None, None]
    assert (splitter.profile, splitter.response, splitter.format_ok) == (
        ["likes jazz"],
        "Hi there",
        True,
    )


@pytest.mark.parametrize("cut", ["<", "</", "<pro", "</res", "<PROFILE", "</response"])
def test_stream_splitter_holds_a_partial_tag_at_a_chunk_end(cut: str) -> None:
    splitter = rlpa.StreamSplitter()
    assert splitter.feed("Hello " + cut).text == "Hello"
    assert splitter.feed("x").text == " " + cut + "x"


def test_stream_splitter_releases_a_lone_angle_bracket_once_it_is_not_a_tag() -> None:
    splitter = rlpa.StreamSplitter()
    assert splitter.feed("a <").text == "a"
    assert splitter.feed(" b").text == " < b"
    assert splitter.finish().text == ""


def test_stream_splitter_holds_whitespace_until_more_reply_follows() -> None:
    splitter = rlpa.StreamSplitter()
    assert splitter.feed("<response>\n\n  ").text == ""
    assert splitter.feed("Hi \n").text == "Hi"
    assert splitter.feed("  ").text == ""
    assert splitter.feed("there\n\n").text == " \n  there"
    assert splitter.finish().text == ""
    assert splitter.response == "Hi \n  there"


def test_stream_splitter_completes_the_profile_when_the_response_opens() -> None:
    events, _ = split(["<profile>\n- a\n", "<response>", "Hi"])
    assert [e.profile for e in events] == [None, ["a"], None, None]


def test_stream_splitter_completes_the_profile_in_finish_when_the_stream_stops_inside() -> None:
    events, splitter = split(["<profile>\n- a\n- b <pro"])
    assert events[-1] == rlpa.SplitEvent("", ["a", "b <pro"])
    assert (splitter.profile, splitter.response, splitter.format_ok) == (["a", "b <pro"], "", False)


def test_stream_splitter_reports_an_empty_profile_once() -> None:
    events, splitter = split(["<profile>\n</profile><response>Hi"])
    assert events[0].profile == [] and events[1].profile is None
    assert splitter.profile == []


def test_stream_splitter_flushes_a_held_tag_prefix_in_finish() -> None:
    events, splitter = split(["Hello <resp"])
    assert texts(events) == ["Hello", " <resp"]
    assert splitter.response == "Hello <resp" == rlpa.parse_output("Hello <resp").response


def test_stream_splitter_ignores_everything_after_the_response_ends() -> None:
    events, _ = split(["<response>Hi</response>", "<profile>- a</profile> more"])
    assert texts(events) == ["Hi", "", ""]
    assert all(e.profile is None for e in events)


def test_stream_splitter_refuses_use_after_finish() -> None:
    splitter = rlpa.StreamSplitter()
    splitter.finish()
    with pytest.raises(RuntimeError):
        splitter.feed("x")
    with pytest.raises(RuntimeError):
        splitter.finish()


def test_stream_splitter_is_linear_in_the_output_length() -> None:
    # One-character chunks of a long, tag-dense output: re-scanning the buffer on each feed
    # would be ~10^10 steps here; a linear splitter takes well under a second.
    body = "<b> a </b> <" * 20_000
    text = "<profile>\n- a\n</profile>\n<response>\n" + body + "\n</response>"
    started = time.perf_counter()
    _, splitter = split(list(text))
    assert time.perf_counter() - started < 10
    assert splitter.response == rlpa.parse_output(text).response


def test_inside_the_reply_only_a_possible_response_end_is_held() -> None:
    splitter = rlpa.StreamSplitter()
    assert splitter.feed("<profile>\n</profile>\n<response>\nUse Vec<").text == "Use Vec"
    assert splitter.feed("u8> or <pro").text == "<u8> or <pro"
    assert splitter.feed("file> and </resp").text == "file> and"
    assert splitter.feed("ond>, a <").text == " </respond>, a"
    assert splitter.feed("/response> tail").text == ""
    assert splitter.finish().text == ""
    assert splitter.response == "Use Vec<u8> or <profile> and </respond>, a"
    assert splitter.profile == [] and splitter.format_ok


def test_a_reply_cut_at_a_possible_response_end_keeps_it_as_text() -> None:
    events, splitter = split(["<response>a </Resp"])
    assert texts(events) == ["a", " </Resp"]
    assert splitter.response == rlpa.parse_output("<response>a </Resp").response
