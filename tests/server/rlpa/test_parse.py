import pytest

from server import rlpa
from server.rlpa import ParsedOutput


def parse(text: str) -> ParsedOutput:
    return rlpa.parse_output(text)


def test_parse_output_reads_a_well_formed_output() -> None:
    text = (
        "<profile>\n- likes jazz\n- lives in Oslo\n</profile>\n\n<response>\nHi there!\n</response>"
    )
    assert parse(text) == ParsedOutput(["likes jazz", "lives in Oslo"], "Hi there!", True)


def test_parse_output_reads_an_empty_profile_as_an_empty_list() -> None:
    assert parse("<profile>\n</profile>\n<response>Hi</response>") == ParsedOutput([], "Hi", True)


@pytest.mark.parametrize(
    "text",
    [
        "<profile>\n- a\n- b\n<response>\nHello\n</response>",
        "<profile>\n- a\n- b\n</profile>\n<response>\nHello\n",
        "<profile>\n- a\n- b\n<response>\nHello",
        "<profile>- a\n- b</profile><response>Hello</response>",
        "  \n<profile>\n\n  - a  \n\n- b\n</profile>\n\n\n<response>\n\n  Hello \n\n</response>\n",
    ],
)
def test_parse_output_tolerates_missing_closing_tags_and_whitespace(text: str) -> None:
    assert parse(text) == ParsedOutput(["a", "b"], "Hello", True)


def test_parse_output_handles_star_and_numbered_bullets() -> None:
    text = "<profile>\n* a\n1. b\n2) c\n• d\ne\n</profile>\n<response>ok</response>"
    assert parse(text).profile == ["a", "b", "c", "d", "e"]


def test_parse_output_without_tags_is_all_reply() -> None:
    assert parse("  Just a reply.\n") == ParsedOutput(None, "Just a reply.", False)
    assert parse("a < b and c > d") == ParsedOutput(None, "a < b and c > d", False)
    assert parse("") == ParsedOutput(None, "", False)


def test_parse_output_with_profile_only_keeps_text_outside_it_as_reply() -> None:
    assert parse("<profile>\n- a\n</profile>\nHello there") == ParsedOutput(
        ["a"], "Hello there", False
    )
    assert parse("Hi <profile>- a</profile> you") == ParsedOutput(["a"], "Hi  you", False)
    assert parse("<profile>\n- a\n- b") == ParsedOutput(["a", "b"], "", False)


def test_inside_the_reply_only_the_response_end_is_a_tag() -> None:
    # A block in the reply is the user's own words echoed, or markup: shown, never stored.
    assert parse("<response>Hi <profile>- a</profile> you</response>") == ParsedOutput(
        None, "Hi <profile>- a</profile> you", False
    )
    text = "<profile>- a</profile><response>Hi <profile>- b</profile>there</response>"
    assert parse(text) == ParsedOutput(["a"], "Hi <profile>- b</profile>there", True)
    assert parse("<profile></profile><response>a <response> b</response>").response == (
        "a <response> b"
    )


@pytest.mark.parametrize(
    "reply",
    [
        "Use Vec<u8> when a < b, and <= or >= otherwise.",
        "<div class='x'>Hello</div>\n<p>World</p>",
        "x << 2 <",
        "Close it with </resp and not </respond>.",
        "- a list\n- of things",
    ],
)
def test_a_reply_may_hold_any_text_but_its_end(reply: str) -> None:
    text = rlpa.render_output(["likes Rust"], reply)
    assert parse(text) == ParsedOutput(["likes Rust"], reply, True)
    assert parse(text.replace("\n</response>", " </Response> tail")).response == reply


def test_parse_output_drops_text_after_the_response() -> None:
    text = "<profile>- a</profile><response>Hi</response>\n<profile>- b</profile> junk <response>x"
    assert parse(text) == ParsedOutput(["a"], "Hi", True)


def test_parse_output_matches_tags_in_any_case() -> None:
    text = "<PROFILE>\n- a\n</Profile>\n<RESPONSE>\nHi\n</ReSpOnSe> tail"
    assert parse(text) == ParsedOutput(["a"], "Hi", True)


def test_parse_output_ignores_lookalike_unicode_tags() -> None:
    # Long s and dotless i match "s" and "i" under Unicode IGNORECASE, but are not tags.
    for lookalike in ("<re\u017fponse>x", "<prof\u0131le>x", "<prof\u0130le>x"):
        assert parse(lookalike) == ParsedOutput(None, lookalike, False)


def test_parse_output_normalizes_duplicate_and_overlong_traits() -> None:
    long = "z" * 250
    text = f"<profile>\n- Jazz\n- jazz\n- {long}\n-\n\n</profile><response>ok</response>"
    assert parse(text).profile == ["Jazz", "z" * rlpa.MAX_TRAIT_CHARS]


def test_parse_output_without_profile_block_returns_none_for_the_profile() -> None:
    assert parse("<response>\nHi\n</response>") == ParsedOutput(None, "Hi", False)


def test_parse_output_keeps_the_first_profile_and_hides_a_later_block_outside_the_reply() -> None:
    text = "<profile>- a</profile><profile>- secret</profile><response>Hi there</response>"
    assert parse(text) == ParsedOutput(["a"], "Hi there", True)


def test_parse_output_marks_text_outside_the_blocks_as_malformed() -> None:
    got = parse("Sure!\n<profile>- a</profile>\n<response>Hi</response>")
    assert got == ParsedOutput(["a"], "Sure!\n\nHi", False)
    assert not parse("<response>Hi</response><profile>- a</profile>").format_ok
    assert not parse("</profile><profile>- a</profile><response>Hi").format_ok


def test_parse_output_closes_the_profile_at_a_stray_response_end() -> None:
    assert parse("<profile>- a\n</response> after") == ParsedOutput(["a"], "", False)


def test_parse_output_ignores_a_nested_profile_opening() -> None:
    assert parse("<profile>- a\n<profile>- b</profile><response>Hi").profile == ["a", "b"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\x0b", "\x0c"])
def test_a_unicode_line_separator_inside_a_trait_does_not_split_it(separator: str) -> None:
    text = (
        f"<profile>\n- lives in{separator}Oslo\n- likes jazz\n</profile>\n<response>Hi</response>"
    )
    assert parse(text).profile == ["lives in Oslo", "likes jazz"]
