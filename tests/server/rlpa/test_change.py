"""A turn's profile change: derived from its block against what it read, applied to the latest
version, so that concurrent turns merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server import rlpa
from server.rlpa import ProfileChange, change_from_block, change_from_rewrite, render_change


def test_a_change_lands_on_the_latest_version_not_on_the_one_the_turn_read() -> None:
    read = ["likes jazz"]
    change = change_from_rewrite(read, ["likes jazz", "is vegetarian"])
    latest = ["likes jazz", "works night shifts"]  # another turn wrote meanwhile
    assert change.apply(latest) == ["likes jazz", "works night shifts", "is vegetarian"]


def test_a_trait_dropped_from_the_block_is_removed_case_insensitively() -> None:
    change = change_from_rewrite(
        ["Lives in Seattle", "likes jazz"], ["likes jazz", "lives in Oslo"]
    )
    assert change == ProfileChange(add=("lives in Oslo",), remove=("Lives in Seattle",))
    assert change.apply(["lives in seattle", "likes jazz", "has a cat"]) == [
        "likes jazz",
        "has a cat",
        "lives in Oslo",
    ]


def test_an_empty_block_never_erases_a_profile() -> None:
    assert not change_from_rewrite(["likes jazz", "is a nurse"], [])


def test_additions_beyond_the_cap_never_push_stored_traits_out() -> None:
    stored = [f"trait {i}" for i in range(rlpa.MAX_TRAITS)]
    assert ProfileChange(add=("new",)).apply(stored) == stored


traits = st.lists(st.sampled_from(["a", "B", "c", "d", "E", "f"]), unique_by=str.casefold)


@given(read=traits, block=traits.filter(bool))
def test_applied_to_what_was_read_a_rewrite_gives_the_block(
    read: list[str], block: list[str]
) -> None:
    result = change_from_rewrite(read, block).apply(read)
    assert sorted(t.casefold() for t in result) == sorted(t.casefold() for t in block)


@given(read=traits, first=traits.filter(bool), second=traits.filter(bool))
def test_two_concurrent_turns_keep_both_additions(
    read: list[str], first: list[str], second: list[str]
) -> None:
    a = change_from_rewrite(read, read + first)
    b = change_from_rewrite(read, read + second)
    merged = {t.casefold() for t in b.apply(a.apply(read))}
    assert {t.casefold() for t in read + first + second} <= merged


def test_a_v2_block_adds_what_it_lists_and_forgets_what_it_marks() -> None:
    block = rlpa.parse_output(
        "<profile>\n- Forget:  lives in Seattle\n- lives in Denver\n- forget:\n</profile>\n"
        "<response>Welcome!</response>"
    ).profile
    assert block is not None
    change = change_from_block(block)
    assert change == ProfileChange(add=("lives in Denver",), remove=("lives in Seattle",))
    assert change.apply(["is a nurse", "lives in Seattle"]) == ["is a nurse", "lives in Denver"]


def test_under_v2_what_a_block_does_not_mention_is_kept() -> None:
    stored = ["is a nurse", "likes hiking"]
    assert rlpa.profile_change(2, stored, []).apply(stored) == stored
    assert rlpa.profile_change(2, stored, ["is vegetarian"]).apply(stored) == [
        *stored,
        "is vegetarian",
    ]


trait_text = (
    st.text(st.characters(codec="utf-8", categories=("L", "N", "Zs", "P")), min_size=1, max_size=40)
    .map(str.strip)
    .filter(lambda t: t and not t.casefold().startswith("forget") and t[0] not in "-*•+")
)


@given(
    add=st.lists(trait_text, max_size=6, unique_by=str.casefold),
    remove=st.lists(trait_text, max_size=6, unique_by=str.casefold),
)
def test_a_v2_change_round_trips_through_the_output_format(
    add: list[str], remove: list[str]
) -> None:
    change = ProfileChange(add=tuple(add), remove=tuple(remove))
    text = rlpa.render_output(render_change(change), "ok")
    parsed = rlpa.parse_output(text)
    assert parsed.format_ok and parsed.profile is not None
    expected = change_from_block(rlpa.normalize_traits(render_change(change)))
    assert change_from_block(parsed.profile) == expected
