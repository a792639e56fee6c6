import pytest

from server import rlpa

STORED = ["likes jazz", "lives in Oslo"]
PROFILE_HEADING = "What you know about this user from earlier conversations:"


def test_render_profile_and_output_match_the_contract_format() -> None:
    assert rlpa.render_profile([]) == "<profile>\n</profile>"
    assert rlpa.render_profile(["a", "b"]) == "<profile>\n- a\n- b\n</profile>"
    assert rlpa.render_output(["a"], "hi") == (
        "<profile>\n- a\n</profile>\n\n<response>\nhi\n</response>"
    )


def test_system_prompt_shows_the_exact_output_format() -> None:
    prompt = rlpa.SYSTEM_PROMPT
    assert "<profile>\n- " in prompt and "</profile>\n\n<response>\n" in prompt
    example = prompt[prompt.index("Example:") + len("Example:") :]
    parsed = rlpa.parse_output(example)
    assert parsed.format_ok and parsed.profile and parsed.response
    assert len(prompt) < 1200  # small models read it every turn


def test_build_messages_first_turn_has_stored_profile_in_system_message() -> None:
    got = rlpa.build_messages([{"role": "user", "content": "hi"}], STORED)
    assert got == [
        {
            "role": "system",
            "content": rlpa.SYSTEM_PROMPT
            + "\n\n"
            + PROFILE_HEADING
            + "\n"
            + rlpa.render_profile(STORED),
        },
        {"role": "user", "content": "hi"},
    ]


def test_build_messages_without_stored_profile_is_just_the_instructions() -> None:
    stored: list[str] | None
    for stored in (None, []):
        got = rlpa.build_messages([{"role": "user", "content": "hi"}], stored)
        assert got[0] == {"role": "system", "content": rlpa.SYSTEM_PROMPT}


def test_build_messages_moves_operator_instructions_into_the_system_message() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": "  Answer in French.  "},
        {"role": "system", "content": "   "},
    ]
    got = rlpa.build_messages(messages, STORED)
    assert [m["role"] for m in got] == ["system", "user"]
    assert got[0]["content"] == (
        rlpa.SYSTEM_PROMPT
        + "\n\nOperator instructions:\nBe brief.\n\nAnswer in French.\n\n"
        + PROFILE_HEADING
        + "\n"
        + rlpa.render_profile(STORED)
    )


def test_build_messages_shows_the_profile_only_on_the_last_assistant_turn() -> None:
    messages = [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"},
    ]
    got = rlpa.build_messages(messages, STORED)
    assert got[0] == {"role": "system", "content": rlpa.SYSTEM_PROMPT}
    assert got[1:] == [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": rlpa.render_output(STORED, "a2")},
        {"role": "user", "content": "u3"},
    ]


def test_build_messages_renders_an_empty_profile_when_none_is_stored() -> None:
    messages = [{"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "hi"}]
    got = rlpa.build_messages(messages, None)
    assert got[1]["content"] == rlpa.render_output([], "Hello!")


def test_build_messages_outputs_only_system_user_and_assistant_roles() -> None:
    messages = [
        {"role": "developer", "content": "d"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
    ]
    got = rlpa.build_messages(messages, STORED)
    assert [m["role"] for m in got] == ["system", "user", "assistant", "user"]
    assert PROFILE_HEADING not in got[0]["content"]


def test_build_messages_rejects_an_unknown_role() -> None:
    with pytest.raises(ValueError, match="function"):
        rlpa.build_messages([{"role": "function", "content": "x"}], None)


def test_v2_shows_the_stored_profile_every_turn_and_never_asks_for_a_copy() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "what now?"},
    ]
    got = rlpa.build_messages(messages, STORED, version=2)
    system = got[0]["content"]
    assert system.startswith(rlpa.SYSTEM_PROMPT_V2)
    assert system.endswith("What you know about this user:\n- likes jazz\n- lives in Oslo")
    assert "<profile>" not in system[len(rlpa.SYSTEM_PROMPT_V2) :]  # nothing to copy
    assert got[1:] == messages  # assistant turns carry only what the user saw


def test_v2_example_is_a_change_the_parser_reads() -> None:
    prompt = rlpa.SYSTEM_PROMPT_V2
    parsed = rlpa.parse_output(prompt[prompt.index("Example:") + len("Example:") :])
    assert parsed.format_ok and parsed.profile is not None
    change = rlpa.change_from_block(parsed.profile)
    assert change.add and change.remove
    assert len(prompt) < 1200


def test_an_unknown_contract_version_is_refused() -> None:
    with pytest.raises(ValueError, match="contract version"):
        rlpa.build_messages([{"role": "user", "content": "hi"}], None, version=3)
