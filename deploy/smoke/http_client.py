"""The gateway as a client reaches it through the published port: the OpenAI API and the
admin API, with the admin key (authentication is on whenever the gateway binds every
interface)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def _call(port: int, key: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=180) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise
        raise RuntimeError(f"{path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from exc


def served_models(port: int, key: str) -> list[str]:
    return [model["id"] for model in _call(port, key, "/v1/models")["data"]]


def chat_turn(port: int, key: str, model: str, user: str, text: str) -> dict[str, Any]:
    """One turn that names its user, so that the gateway keeps their profile."""
    body = {
        "model": model,
        "user": user,
        "max_tokens": 48,
        "messages": [{"role": "user", "content": text}],
        "rlpa": {"return_profile": True},
    }
    reply: dict[str, Any] = _call(port, key, "/v1/chat/completions", body)
    return reply


def stored_version(port: int, key: str, user: str) -> int:
    """The user's newest stored profile version, read back through the admin API; 0: none."""
    try:
        profile = _call(port, key, f"/admin/users/{urllib.parse.quote(user)}/profile")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return 0
        raise
    version: int = profile["version"]
    return version
