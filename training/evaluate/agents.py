"""The systems under test, behind one small interface: a local checkpoint, a running gateway, or
a notebook that needs no model (baselines.py)."""

from __future__ import annotations

import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from server.rlpa import CONTRACT_VERSION, apply_block, build_messages, parse_output
from training.evaluate.config import SystemConfig

Message = Mapping[str, str]


class ChatAgent(Protocol):
    name: str

    def reset(self, user_id: str) -> None:
        """Forget everything about this user, so every eval run starts cold."""
        ...

    def turn(self, user_id: str, history: Sequence[Message]) -> tuple[str, list[str] | None]:
        """(the reply to the history's last user message, the profile inferred after it);
        None for a system that keeps no profile."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 160
    temperature: float = 0.7
    top_p: float = 0.9
    do_sample: bool = True


class CheckpointAgent:
    """A local model run with transformers, prompted exactly as the gateway prompts it: its own
    last inferred profile plays the stored profile, as the gateway's store would."""

    def __init__(
        self,
        name: str,
        model: Any,
        tokenizer: Any,
        sampling: Sampling | None = None,
        seed: int = 0,
        version: int = CONTRACT_VERSION,
    ) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling or Sampling()
        self.seed = seed
        self.version = version
        """The RLPA contract the checkpoint writes (its rlpa.json says, none: 1; a bare base: the
        latest; or the system's pinned contract_version)."""
        self._profiles: dict[str, list[str]] = {}

    @classmethod
    def load(
        cls,
        name: str,
        path: str,
        *,
        base_model: str | None = None,
        device: str = "cpu",
        sampling: Sampling | None = None,
        seed: int = 0,
        contract_version: int | None = None,
    ) -> CheckpointAgent:
        """`contract_version` pins the contract; None: the checkpoint's rlpa.json says."""
        from training.evaluate.checkpoint import load_checkpoint

        model, tokenizer, version = load_checkpoint(path, base_model, device)
        return cls(name, model, tokenizer, sampling, seed, contract_version or version)

    def reset(self, user_id: str) -> None:
        import torch

        self._profiles.pop(user_id, None)
        # Seeded per user, not per run: a user's conversation does not depend on who ran before.
        torch.manual_seed(self.seed ^ zlib.crc32(user_id.encode()))

    def turn(self, user_id: str, history: Sequence[Message]) -> tuple[str, list[str] | None]:
        import torch

        messages = build_messages(history, self._profiles.get(user_id), self.version)
        inputs = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.model.device)
        s = self.sampling
        options: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "do_sample": s.do_sample}
        if s.do_sample:  # passing them to greedy decoding only earns a warning
            options.update(temperature=s.temperature, top_p=s.top_p)
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                **options,
                pad_token_id=self.tokenizer.eos_token_id if pad is None else pad,
            )
        prompt_length = inputs["input_ids"].shape[1]
        text = self.tokenizer.decode(output[0, prompt_length:], skip_special_tokens=True)
        parsed = parse_output(text)
        # What the gateway would store: the block's change applied (no block changes nothing).
        stored = apply_block(self.version, self._profiles.get(user_id, []), parsed.profile)
        self._profiles[user_id] = stored
        return parsed.response, list(stored)

    def close(self) -> None:
        self._profiles.clear()


class GatewayAgent:
    """A running gateway over HTTP. It stores the profile itself; the agent reads it back from
    the response (the `return_profile` extension) or from the admin API."""

    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        admin_api_key: str | None = None,
        profile_source: str = "response",
        sampling: Sampling | None = None,
        client: httpx.Client | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.name = name
        # The admin routes are not under /v1, so an OpenAI-style base URL is cut back to the root.
        self.root = base_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.profile_source = profile_source
        s = sampling or Sampling()
        self.params: dict[str, Any] = {"max_tokens": s.max_new_tokens}
        self.params["temperature"] = s.temperature if s.do_sample else 0.0
        if s.do_sample:
            self.params["top_p"] = s.top_p
        self._chat = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        admin_key = admin_api_key or api_key
        self._admin = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
        self._client = client or httpx.Client(timeout=timeout)

    def _user_url(self, user_id: str) -> str:
        return f"{self.root}/admin/users/{quote(user_id, safe='')}"

    def reset(self, user_id: str) -> None:
        response = self._client.delete(self._user_url(user_id), headers=self._admin)
        if response.status_code != 404:  # never seen: already erased
            response.raise_for_status()

    def turn(self, user_id: str, history: Sequence[Message]) -> tuple[str, list[str] | None]:
        body = {
            "model": self.model,
            "messages": [dict(m) for m in history],
            "user": user_id,
            **self.params,
            "rlpa": {"return_profile": True},
        }
        response = self._client.post(
            self.root + "/v1/chat/completions", json=body, headers=self._chat
        )
        response.raise_for_status()
        data = response.json()
        reply = data["choices"][0]["message"]["content"] or ""
        block = data.get("rlpa")
        if self.profile_source == "response" and isinstance(block, dict):
            return reply, [str(t) for t in block.get("profile") or []]
        return reply, self.stored_profile(user_id)

    def set_profile(self, user_id: str, traits: Sequence[str]) -> list[str]:
        """Store `traits` as the user's whole profile (an admin edit); returns what was stored."""
        response = self._client.put(
            self._user_url(user_id) + "/profile", json={"traits": list(traits)}, headers=self._admin
        )
        response.raise_for_status()
        return [str(t) for t in response.json()["traits"]]

    def stored_profile(self, user_id: str) -> list[str]:
        response = self._client.get(self._user_url(user_id) + "/profile", headers=self._admin)
        if response.status_code == 404:  # nothing stored yet
            return []
        response.raise_for_status()
        return [str(t) for t in response.json()["traits"]]

    def close(self) -> None:
        self._client.close()


def build_agent(system: SystemConfig, seed: int = 0) -> ChatAgent:
    from training.evaluate import baselines

    if system.kind in baselines.BASELINES:
        return baselines.EchoAgent(system.name, first_only=system.kind == baselines.ECHO1)
    sampling = Sampling(system.max_new_tokens, system.temperature, system.top_p, system.do_sample)
    if system.kind == "gateway":
        if not system.base_url:
            raise ValueError(f"gateway system {system.name!r} needs a base_url")
        return GatewayAgent(
            system.name,
            system.base_url,
            system.model,
            system.api_key or os.environ.get("RLPA_EVAL_API_KEY"),
            admin_api_key=system.admin_api_key,
            profile_source=system.profile_source,
            sampling=sampling,
        )
    return CheckpointAgent.load(
        system.name,
        system.path,
        base_model=system.base_model,
        device=system.device,
        sampling=sampling,
        seed=seed,
        contract_version=system.contract_version,
    )
