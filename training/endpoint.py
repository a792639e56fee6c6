"""A minimal client for any OpenAI-compatible chat endpoint (vLLM, llama.cpp, the gateway, a
hosted API): the simulated user and the judges need nothing more than one completion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx


class EndpointError(RuntimeError):
    """The endpoint answered, but not with a chat completion."""


class ChatEndpoint:
    """`base_url` is what an OpenAI client takes, e.g. "http://localhost:8000/v1"."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def complete(self, messages: Sequence[Mapping[str, str]], **params: Any) -> str:
        """The first choice's text; sampling parameters (temperature...) pass through."""
        body = {"model": self.model, "messages": [dict(m) for m in messages], **params}
        response = self._client.post(self.url, json=body, headers=self._headers)
        response.raise_for_status()
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise EndpointError(f"{self.url} returned no chat completion: {error!r}") from error
        return content or ""

    def close(self) -> None:
        self._client.close()
