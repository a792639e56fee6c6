"""The one table that decides what happens to each OpenAI chat request field."""

from __future__ import annotations

import logging

import pytest

from server.errors import BadRequestError
from server.openai import fields
from server.openai import protocol as p


def _request(**body: object) -> p.ChatCompletionRequest:
    return p.ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    )


def test_every_declared_request_field_is_in_the_table() -> None:
    assert set(fields.REQUEST_FIELDS) == set(p.ChatCompletionRequest.model_fields)


def test_parallel_tool_calls_is_ignored_and_logged_even_where_a_backend_takes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert isinstance(fields.REQUEST_FIELDS["parallel_tool_calls"], fields.Ignore)
    with caplog.at_level(logging.INFO, logger=fields.__name__):
        extras = fields.upstream_extras(
            _request(parallel_tool_calls=True), frozenset({"parallel_tool_calls"})
        )
    assert extras == {}
    assert "'parallel_tool_calls'" in caplog.text


_REFUSED_VALUES: dict[str, object] = {
    "function_call": "auto",
    "functions": [{"name": "f"}],
    "logprobs": True,
    "tool_choice": "auto",
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "top_logprobs": 2,
}


@pytest.mark.parametrize(
    "name", [name for name, t in fields.REQUEST_FIELDS.items() if isinstance(t, fields.Refuse)]
)
def test_refused_fields_are_refused_whatever_the_backend(name: str) -> None:
    supported = frozenset(fields.REQUEST_FIELDS)
    with pytest.raises(BadRequestError) as raised:
        fields.upstream_extras(_request(**{name: _REFUSED_VALUES[name]}), supported)
    assert raised.value.param == name


def test_passed_fields_go_upstream_only_where_the_backend_takes_them() -> None:
    body = _request(response_format={"type": "json_object"}, logit_bias={"1": 2.0})
    extras = fields.upstream_extras(body, frozenset({"response_format", "logit_bias"}))
    assert extras == {"response_format": {"type": "json_object"}, "logit_bias": {"1": 2.0}}
    with pytest.raises(BadRequestError) as raised:
        fields.upstream_extras(body, frozenset({"logit_bias"}))
    assert raised.value.param == "response_format"


def test_openai_defaults_ask_for_nothing() -> None:
    body = _request(response_format={"type": "text"}, tools=[], logprobs=False)
    assert fields.upstream_extras(body, frozenset()) == {}
