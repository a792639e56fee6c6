import pytest

from server import rlpa


def test_validate_traits_strips_and_dedupes_case_insensitively_keeping_first_spelling() -> None:
    got = rlpa.validate_traits(["  Likes Cats ", "likes cats", "Lives in Oslo", "LIKES CATS"])
    assert got == ["Likes Cats", "Lives in Oslo"]


def test_validate_traits_accepts_the_limits_exactly() -> None:
    traits = [f"{i:03d}" + "x" * (rlpa.MAX_TRAIT_CHARS - 3) for i in range(rlpa.MAX_TRAITS)]
    assert rlpa.validate_traits(traits) == traits


@pytest.mark.parametrize(
    ("traits", "index", "words"),
    [
        (["ok", "x" * 201], 1, "201 characters"),
        (["ok", "   "], 1, "empty"),
        (["ok", ""], 1, "empty"),
        (["two\nlines"], 0, "U+000A"),
        (["tab\there"], 0, "U+0009"),
        (["zero\u200bwidth"], 0, "U+200B"),
        (["line\u2028separator"], 0, "U+2028"),
        (["nul\x00"], 0, "U+0000"),
        (["ok", "ends the block </PROFILE>"], 1, "tag"),
    ],
)
def test_validate_traits_rejects_a_bad_trait_naming_its_index(
    traits: list[str], index: int, words: str
) -> None:
    with pytest.raises(rlpa.TraitError) as caught:
        rlpa.validate_traits(traits)
    assert caught.value.index == index
    assert caught.value.param == f"traits[{index}]"
    assert f"trait {index}" in str(caught.value)
    assert words in str(caught.value)


def test_validate_traits_rejects_too_many_distinct_traits() -> None:
    with pytest.raises(rlpa.TraitError, match="65 distinct traits") as caught:
        rlpa.validate_traits([f"t{i}" for i in range(rlpa.MAX_TRAITS + 1)])
    assert caught.value.index is None
    assert caught.value.param == "traits"


def test_validate_traits_counts_traits_after_removing_duplicates() -> None:
    traits = [f"t{i}" for i in range(rlpa.MAX_TRAITS)] + ["T0"]
    assert len(rlpa.validate_traits(traits)) == rlpa.MAX_TRAITS


def test_validate_traits_rejects_a_bare_string() -> None:
    with pytest.raises(rlpa.TraitError):
        rlpa.validate_traits("likes cats")


def test_trait_error_is_a_value_error() -> None:
    assert issubclass(rlpa.TraitError, ValueError)


def test_normalize_traits_removes_bullets_of_every_kind() -> None:
    lines = ["- dash", "* star", "• dot", "+ plus", "1. first", "12) twelfth", "-tight", "plain"]
    assert rlpa.normalize_traits(lines) == [
        "dash",
        "star",
        "dot",
        "plus",
        "first",
        "twelfth",
        "tight",
        "plain",
    ]


def test_normalize_traits_removes_only_one_bullet_and_keeps_numbers() -> None:
    lines = ["- - nested", "-5 °C is cold for them", "1.5 children", "- 3 cats"]
    assert rlpa.normalize_traits(lines) == [
        "- nested",
        "-5 °C is cold for them",
        "1.5 children",
        "3 cats",
    ]


def test_normalize_traits_drops_control_characters_and_empties() -> None:
    lines = ["", "   ", "-", "- ", "likes\tjazz", "zero\u200bwidth", "bell\x07", "\x00"]
    assert rlpa.normalize_traits(lines) == ["likes jazz", "zerowidth", "bell"]


def test_normalize_traits_truncates_dedupes_and_caps() -> None:
    long = "y" * 199 + " tail"
    assert rlpa.normalize_traits([long]) == ["y" * 199]
    assert rlpa.normalize_traits(["- A", "* a", "b", "B "]) == ["A", "b"]
    many = [f"- trait {i}" for i in range(100)]
    assert rlpa.normalize_traits(many) == [f"trait {i}" for i in range(rlpa.MAX_TRAITS)]


def test_normalize_traits_leaves_validated_traits_unchanged_after_rendering() -> None:
    traits = rlpa.validate_traits(["- already dashed", "* starred", "2) numbered", "x  y", "•"])
    lines = rlpa.render_profile(traits).splitlines()[1:-1]
    assert rlpa.normalize_traits(lines) == traits
