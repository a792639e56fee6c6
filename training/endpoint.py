"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp, the gateway, a hosted API): `Endpoint`,
where one is, as every stage's config names it, and `ChatEndpoint`, a minimal client for it. The
simulated user and the judges need nothing more than one completion."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """The endpoint the LLM user, matcher and judge of a run call (`ComponentArgs.endpoint()`).

    The key is never in a recipe: `api_key_env` names the environment variable holding it.
    `concurrency` bounds the requests in flight at once where a stage runs them side by side."""

    url: str  # as an OpenAI client takes it, e.g. http://localhost:8001/v1
    model: str
    api_key_env: str | None = None
    concurrency: int = 16

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


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
