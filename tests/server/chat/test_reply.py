"""The reply reader: `stop` and `max_tokens` apply to the visible reply only, the hidden block has
its own bound, and a reply may hold any text but its end."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from server import rlpa
from server.backends.base import Finish, TextDelta
from server.chat.reply import ReplyReader

BLOCK = "<profile>\n- works nights\n- lives in Lyon\n</profile>\n\n<response>\n"


def tokens(text: str) -> list[str]:
    """The output cut as a tokenizer might: words and the spaces or newlines before them."""
    pieces, word = [], ""
    for char in text:
        if char in " \n" and word:
            pieces.append(word)
            word = ""
        word += char
    return [*pieces, word] if word else pieces


def read(
    pieces: Sequence[str], *, stop: Sequence[str] = (), max_tokens: int = 100, block: int = 100
) -> tuple[str, list[str] | None, str, ReplyReader]:
    """(reply, profile, finish_reason, reader) after the pieces, one token each."""
    reader = ReplyReader(stop=list(stop), max_tokens=max_tokens, block_max_tokens=block)
    text, profile = [], None
    for piece in pieces:
        got = reader.feed(TextDelta(piece))
        text.append(got.text)
        profile = got.profile if got.profile is not None else profile
        if reader.cut:
            break
    finish = Finish("stop", prompt_tokens=9, completion_tokens=len(pieces) + 1)
    tail = reader.finish(finish)
    profile = tail.profile if tail.profile is not None else profile
    return "".join(text) + tail.text, profile, reader.finish_reason(finish), reader


def test_a_stop_string_in_the_hidden_block_does_not_end_the_reply() -> None:
    output = BLOCK + "Bonjour!\nHow was the night shift?\n</response>"
    reply, profile, reason, _ = read(tokens(output), stop=["\n"])
    assert (reply, profile, reason) == ("Bonjour!", ["works nights", "lives in Lyon"], "stop")


def test_a_stop_string_split_across_tokens_never_shows() -> None:
    pieces = [BLOCK, "Try", " the E", "N", "D", " of it"]
    assert read(pieces, stop=["END"])[:3] == ("Try the ", ["works nights", "lives in Lyon"], "stop")


def test_without_its_stop_string_the_reply_is_whole() -> None:
    reply, _, reason, reader = read(tokens(BLOCK + "Hi there.\n</response>"), stop=["END"])
    assert (reply, reason, reader.cut) == ("Hi there.", "stop", None)


def test_max_tokens_counts_the_reply_only() -> None:
    reply_words = [f" w{i}" for i in range(10)]
    pieces = [*tokens(BLOCK), "Start", *reply_words, "\n</response>"]
    reply, profile, reason, reader = read(pieces, max_tokens=4)
    assert (reply, reason) == ("Start w0 w1 w2", "length")
    assert profile == ["works nights", "lives in Lyon"]
    assert reader.tokens == len(tokens(BLOCK)) + 4  # the block's tokens count in usage


def test_a_reply_that_ends_within_max_tokens_ends_with_stop() -> None:
    reply, _, reason, _ = read([BLOCK, "Hi", "\n</response>"], max_tokens=3)
    assert (reply, reason) == ("Hi", "stop")


def test_a_reply_cut_by_max_tokens_shows_no_part_of_its_end_tag() -> None:
    reply, _, reason, _ = read([BLOCK, "Hi", "\n", "</resp", "onse>"], max_tokens=3)
    assert (reply, reason) == ("Hi", "length")


def test_a_block_past_its_bound_ends_the_turn_and_is_not_stored() -> None:
    pieces = ["<profile>\n", *[f"- trait {i}\n" for i in range(20)], "</profile>"]
    reply, profile, reason, reader = read(pieces, block=8)
    assert (reply, profile, reason, reader.tokens) == ("", None, "length", 8)


def test_a_block_the_backend_cut_is_not_stored() -> None:
    reader = ReplyReader(stop=[], max_tokens=10, block_max_tokens=100)
    assert reader.feed(TextDelta("<profile>\n- lives in Ly")).profile is None
    tail = reader.finish(Finish("length", 9, 1))
    assert (tail.text, tail.profile) == ("", None)


def test_a_block_the_model_left_open_at_its_end_is_stored() -> None:
    reader = ReplyReader(stop=[], max_tokens=10, block_max_tokens=100)
    reader.feed(TextDelta("<profile>\n- lives in Lyon\n"))
    assert reader.finish(Finish("stop", 9, 2)).profile == ["lives in Lyon"]


@pytest.mark.parametrize(
    "reply",
    [
        "Use Vec<u8> when a < b.",
        "<b>bold</b> and <i>slanted</i>",
        "Echo: <profile>\n- not a trait\n</profile>",
        "a <<</resp and </respond>",
    ],
)
def test_a_reply_with_angle_brackets_passes_through_whatever_the_cut(reply: str) -> None:
    output = rlpa.render_output(["likes Rust"], reply) + "\nignored after the end"
    assert read(list(output))[:3] == (reply, ["likes Rust"], "stop")
    assert read(tokens(output))[:3] == (reply, ["likes Rust"], "stop")
    assert read([output])[:3] == (reply, ["likes Rust"], "stop")


def test_usage_after_a_cut_counts_what_was_read() -> None:
    reader = ReplyReader(stop=["!"], max_tokens=10, block_max_tokens=100)
    for piece in [BLOCK, "Hi", "!", " more"]:
        reader.feed(TextDelta(piece, tokens=2))
        if reader.cut:
            break
    overran = Finish("stop", prompt_tokens=9, completion_tokens=40)
    assert (reader.finish_reason(overran), reader.completion_tokens(overran)) == ("stop", 6)


def test_text_after_the_reply_ends_is_not_read() -> None:
    # A model without the grammar writes on past `</response>`: the reply is complete there.
    pieces = [BLOCK, "Hi", "\n</response>", "\n<profile>", "- junk", " more"]
    reply, profile, reason, reader = read(pieces, max_tokens=3)
    assert (reply, profile, reason) == ("Hi", ["works nights", "lives in Lyon"], "stop")
    assert reader.tokens == 4  # the first token past the end was generated, then stopped


def test_a_reply_that_ended_before_the_backends_bound_ends_with_stop() -> None:
    reader = ReplyReader(stop=[], max_tokens=10, block_max_tokens=100)
    reader.feed(TextDelta(BLOCK + "Hi\n</response>"))
    tail = reader.finish(Finish("length", prompt_tokens=9, completion_tokens=30))
    assert (tail.text, reader.finish_reason(Finish("length", 9, 30))) == ("", "stop")
