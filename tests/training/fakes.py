"""A scripted OpenAI-compatible endpoint for testing the thin HTTP clients (user, judges)."""

from __future__ import annotations

import json
from typing import Any

import httpx


class FakeEndpoint:
    """Answers every chat completion with `reply` and records what it was sent."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.reply},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self._handle))

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body of the last request."""
        return json.loads(self.requests[-1].content)
