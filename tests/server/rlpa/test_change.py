"""A turn's profile change: derived from its block against what it read, applied to the latest
version, so that concurrent turns merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from server import rlpa
from server.rlpa import ProfileChange, change_from_rewrite


def test_a_change_lands_on_the_latest_version_not_on_the_one_the_turn_read() -> None:
    read = ["likes jazz"]
    change = change_from_rewrite(read, ["likes jazz", "is vegetarian"])
    latest = ["likes jazz", "works night shifts"]  # another turn wrote meanwhile
    assert change.apply(latest) == ["likes jazz", "works night shifts", "is vegetarian"]


def test_a_trait_dropped_from_the_block_is_removed_case_insensitively() -> None:
    change = change_from_rewrite(["Lives in Seattle", "likes jazz"], ["likes jazz", "lives in Oslo"])
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
def test_applied_to_what_was_read_a_rewrite_gives_the_block(read: list[str], block: list[str]) -> None:
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
