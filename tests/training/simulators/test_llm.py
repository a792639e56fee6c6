from __future__ import annotations

from tests.training.fakes import FakeEndpoint
from training.data import Profile, Trait
from training.simulators import LLMUser

PROFILE = Profile(
    "p1",
    [
        Trait("occupation", "nurse", "works as a nurse"),
        Trait("diet", "vegan", "is vegan"),
        Trait("location", "Seattle", "lives in Seattle"),
    ],
)


def make_user(endpoint: FakeEndpoint, **options: object) -> LLMUser:
    user = LLMUser(
        "http://judge.local/v1", "sim-model", "secret", client=endpoint.client(), **options
    )
    user.start(PROFILE, seed=3)
    return user


def test_opening_request_carries_the_hidden_profile_and_the_rules() -> None:
    endpoint = FakeEndpoint("hey, what's good for dinner?")
    user = make_user(endpoint)

    message = user.reply([])

    request = endpoint.requests[-1]
    assert message == "hey, what's good for dinner?"
    assert str(request.url) == "http://judge.local/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret"
    body = endpoint.body
    assert body["model"] == "sim-model"
    system, cue = body["messages"]
    assert system["role"] == "system"
    for trait in PROFILE.texts():
        assert trait in system["content"]
    assert "three sentences" in system["content"]
    assert "reveals nothing" in system["content"]
    assert cue["role"] == "user"


def test_roles_are_swapped_so_the_model_speaks_as_the_user() -> None:
    endpoint = FakeEndpoint("fine")
    user = make_user(endpoint)

    user.reply(
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello! What are you after today?"},
        ]
    )

    roles = [(m["role"], m["content"]) for m in endpoint.body["messages"][1:]]
    assert roles == [("assistant", "hi"), ("user", "Hello! What are you after today?")]


def test_replies_are_cut_to_three_sentences() -> None:
    user = make_user(FakeEndpoint("One. Two. Three. Four. Five."))

    assert user.reply([]) == "One. Two. Three."


def test_revealed_traits_are_estimated_from_what_the_model_said() -> None:
    user = make_user(FakeEndpoint("I'm a nurse, so dinner is usually late."))

    user.reply([])

    assert [t.value for t in user.revealed()] == ["nurse"]


def test_a_preference_change_is_announced_in_the_next_prompt_only() -> None:
    endpoint = FakeEndpoint("ok")
    user = make_user(endpoint)

    old, new = user.change_preference() or (None, None)
    user.reply([])
    first = endpoint.body["messages"][0]["content"]
    user.reply([])
    second = endpoint.body["messages"][0]["content"]

    assert old is not None and new is not None
    assert f"no longer true that you {old.text}" in first
    assert new.text in second and old.text not in second
    assert "no longer true" not in second
