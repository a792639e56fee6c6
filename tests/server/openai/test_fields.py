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


@pytest.mark.parametrize(
    "body",
    [
        {"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"},
        {"parallel_tool_calls": False},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_tools_and_response_format_are_the_gateways_never_sent_upstream(
    body: dict[str, object],
) -> None:
    # Read through the RLPA format (docs/tools.md), whatever the backend would take.
    assert fields.upstream_extras(_request(**body), frozenset(fields.REQUEST_FIELDS)) == {}


def test_an_ignored_field_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=fields.__name__):
        assert fields.upstream_extras(_request(nobody_knows_this=1), frozenset()) == {}
    assert "'nobody_knows_this'" in caplog.text


_REFUSED_VALUES: dict[str, object] = {
    "function_call": "auto",
    "functions": [{"name": "f"}],
    "logprobs": True,
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
    body = _request(logit_bias={"1": 2.0})
    extras = fields.upstream_extras(body, frozenset({"logit_bias"}))
    assert extras == {"logit_bias": {"1": 2.0}}
    with pytest.raises(BadRequestError) as raised:
        fields.upstream_extras(body, frozenset())
    assert raised.value.param == "logit_bias"


def test_openai_defaults_ask_for_nothing() -> None:
    body = _request(response_format={"type": "text"}, tools=[], logprobs=False)
    assert fields.upstream_extras(body, frozenset()) == {}
