"""RLPA's multi-turn rollout, run inside GRPO: one GRPO prompt group is one conversation state.

GRPO hands `rollout_func` its prompts with each repeated `num_generations` (n) times. Here a
"prompt" is only a key, "conversation=<i> turn=<t>" (see training.rl.state_dataset); the real
prompt is built now, from that conversation as it stands. For each state the current policy
samples n candidates; each is scored (profile F1 + response reward; a broken format scores 0);
the best is appended to the conversation and the simulated user answers, so the next turn's
state comes from the policy being trained, as in the paper. GRPO then takes the group-relative
advantage over the n candidates of each state: each turn is its own one-step episode.

The scores travel to GRPO as columns (`profile_score`, `response_score`) read back by the reward
functions below, so every candidate is judged once, even with an LLM judge. Pieces behind an
endpoint (the LLM matcher, judge and user) are called for the whole batch at once on a bounded
thread pool (`endpoint_concurrency`), so the GPUs do not wait on one HTTP request at a time;
results keep the batch's order, and offline pieces run in order on the calling thread.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from server.rlpa import apply_block, build_messages, parse_output
from training.data.profiles import Profile, Trait
from training.endpoint import ChatEndpoint
from training.rewards import Matcher, ResponseJudge, profile_reward, response_reward
from training.simulators.base import UserSimulator

Generate = Callable[[list[list[int]], int], tuple[list[list[int]], Any]]
"""(prompt ids repeated n times, n) -> (completion ids, sampling logprobs or None)."""

_KEY = re.compile(r"conversation=(\d+) turn=(\d+)")


class RolloutLayoutError(ValueError):
    """The batch GRPO handed over does not hold whole groups of distinct conversations."""


def state_key(conversation: int, turn: int) -> str:
    return f"conversation={conversation} turn={turn}"


def waits_on_http(piece: object) -> bool:
    """Whether a matcher, judge or user calls an endpoint: only those go on the pool. Offline
    pieces gain nothing from threads under the GIL, and the embedding matcher's cache is not
    thread-safe."""
    return isinstance(getattr(piece, "endpoint", None), ChatEndpoint)


@dataclass
class Conversation:
    profile: Profile
    user: UserSimulator
    history: list[dict[str, str]] = field(default_factory=list)
    """The chat as the user saw it: user messages and assistant replies (no profile blocks)."""
    stored: list[str] = field(default_factory=list)
    """The profile as the gateway would hold it after the last chosen assistant turn."""
    turns: int = 0
    carried: list[Trait] = field(default_factory=list)
    """Traits stored by an earlier conversation, before this one started."""


@dataclass
class Scorer:
    """Profile F1 (against the revealed traits or the true profile) and the response reward."""

    matcher: Matcher
    judge: ResponseJudge
    target: str = "revealed"
    version: int = 2
    pool: Executor | None = None
    """Where the LLM matcher's and judge's calls for a batch run side by side."""

    def gold(self, conversation: Conversation) -> list[Trait]:
        # "revealed" (the default): what the user has said so far is the best any model can know;
        # scoring against the whole hidden profile (the paper's choice, "true") rewards guessing.
        if self.target == "true":
            return list(conversation.user.true_profile().traits)
        revealed = conversation.user.revealed()
        true = conversation.user.true_profile().traits
        # Carried traits still true count as known; one the user changed since does not.
        return revealed + [t for t in conversation.carried if t in true and t not in revealed]

    def score(
        self, completions: Sequence[str], owners: Sequence[Conversation]
    ) -> tuple[list[float], list[float]]:
        gold = [self.gold(c) for c in owners]
        history = [list(c.history) for c in owners]
        revealed = [c.user.revealed() for c in owners]
        stored = [c.stored for c in owners]
        profile = profile_reward(
            completions, gold, self.matcher, stored, self.version, pool=self._pool(self.matcher)
        )
        response = response_reward(
            completions, history, revealed, self.judge, pool=self._pool(self.judge)
        )
        return profile, response

    def _pool(self, piece: object) -> Executor | None:
        return self.pool if waits_on_http(piece) else None


def trainer_generate(trainer: Any) -> Generate:
    """Sampling through GRPOTrainer's own single-turn generator, so transformers generation,
    continuous batching and vLLM (colocate or server) all work unchanged. A private method:
    tests/training/test_trl_internals.py fails loudly if its signature moves."""

    def generate(prompt_ids: list[list[int]], n: int) -> tuple[list[list[int]], Any]:
        completion_ids, logprobs = trainer._generate_single_turn(prompt_ids, None, {}, n)
        return completion_ids, logprobs

    return generate


class ConversationRollout:
    """The `rollout_func` for GRPOTrainer; it keeps the live conversations between calls."""

    def __init__(
        self,
        profiles: Sequence[Profile],
        make_user: Callable[[], UserSimulator],
        scorer: Scorer,
        tokenizer: Any,
        num_generations: int,
        max_turns: int,
        seed: int = 0,
        generate: Generate | None = None,
        change_at_turn: int | None = None,
        version: int = 2,
        carried_share: float = 0.0,
        pool: Executor | None = None,
    ) -> None:
        self.profiles = list(profiles)
        self.make_user = make_user
        self.scorer = scorer
        self.tokenizer = tokenizer
        self.n = num_generations
        self.max_turns = max_turns
        self.seed = seed
        self.generate = generate
        self.change_at_turn = change_at_turn
        """Index of the user message (0 = the opener) that announces a preference change; the
        rollout triggers it, so every simulator changes at the same point."""
        self.version = version
        self.carried_share = carried_share
        self.scorer.version = version
        self.pool = pool
        """Where the LLM users of a batch write their messages side by side."""
        self.live: dict[int, Conversation] = {}
        self._starts: dict[int, int] = {}

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list[Any]]:
        conversations = [self._conversation(key) for key in self._group_keys(prompts)]
        self._user_replies([c for c in conversations if not c.history])  # the openers
        prompt_ids = [self._prompt_ids(c) for c in conversations]
        repeated = [ids for ids in prompt_ids for _ in range(self.n)]
        generate = self.generate or trainer_generate(trainer)
        completion_ids, logprobs = generate(repeated, self.n)
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        owners = [c for c in conversations for _ in range(self.n)]
        turns = [float(c.turns) for c in owners]
        profile, response = self.scorer.score(texts, owners)
        totals = [p + r for p, r in zip(profile, response, strict=True)]
        best = []
        for index, conversation in enumerate(conversations):
            group = range(index * self.n, (index + 1) * self.n)
            # Ties go to the first candidate: sampling order is already random.
            chosen = max(group, key=totals.__getitem__)
            best.extend([totals[chosen]] * self.n)
            self._advance(conversation, texts[chosen])
        self._user_replies([c for c in conversations if c.turns < self.max_turns])
        return {
            "prompt_ids": repeated,
            "completion_ids": completion_ids,
            "logprobs": logprobs,
            "profile_score": profile,
            "response_score": response,
            "turn": turns,
            "best_score": best,
        }

    def _group_keys(self, prompts: Sequence[str]) -> list[str]:
        groups = [prompts[i : i + self.n] for i in range(0, len(prompts), self.n)]
        if len(prompts) % self.n or any(len(set(g)) != 1 for g in groups):
            raise RolloutLayoutError(
                f"rollout got {len(prompts)} prompts that are not whole groups of {self.n} copies "
                "of one state: per_device_train_batch_size * steps_per_generation must be a "
                "multiple of num_generations, and shuffle_dataset must be False"
            )
        keys = [g[0] for g in groups]
        ids = [self._parse(k)[0] for k in keys]
        if len(set(ids)) != len(ids):
            raise RolloutLayoutError(f"one batch holds two turns of one conversation: {keys}")
        return keys

    @staticmethod
    def _parse(key: str) -> tuple[int, int]:
        found = _KEY.fullmatch(key.strip())
        if not found:
            raise RolloutLayoutError(f"not a conversation state key: {key!r}")
        return int(found.group(1)), int(found.group(2))

    def _conversation(self, key: str) -> Conversation:
        index, turn = self._parse(key)
        live = self.live.get(index)
        # A conversation starts over at its turn 0 (a new epoch), when it has run its course, and
        # when it is unknown mid-way (a run resumed from a checkpoint): any state is a fair one.
        if live is None or turn == 0 or live.turns >= self.max_turns:
            start = self._starts.get(index, 0)
            self._starts[index] = start + 1
            profile = self.profiles[index % len(self.profiles)]
            user = self.make_user()
            seed = self.seed + index + start * len(self.profiles)
            user.start(profile, seed)
            live = Conversation(profile, user)
            if self.carried_share:
                from training.dialogues import carried_profile

                rng = random.Random(f"carried:{profile.id}:{seed}")
                live.carried = carried_profile(profile, rng, self.carried_share)
                live.stored = [t.text for t in live.carried]
            self.live[index] = live
        return live

    def _prompt_ids(self, conversation: Conversation) -> list[int]:
        # v1 shows the stored profile on the first turn's system message or the last assistant
        # turn; None on a cold start, as the gateway has nothing stored then.
        stored = conversation.stored or None
        messages = build_messages(conversation.history, stored, self.version)
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])

    def _advance(self, conversation: Conversation, output: str) -> None:
        parsed = parse_output(output)
        conversation.history.append({"role": "assistant", "content": parsed.response})
        # As the gateway stores it: the block's change applied (no block changes nothing).
        conversation.stored = apply_block(self.version, conversation.stored, parsed.profile)
        conversation.turns += 1
        if conversation.turns < self.max_turns and conversation.turns == self.change_at_turn:
            conversation.user.change_preference()  # announced in the reply that follows

    def _user_replies(self, conversations: Sequence[Conversation]) -> None:
        """Each conversation's user answers its history (an empty one: the opener). A batch
        never holds two states of one conversation, so the users are distinct and the replies
        of LLM users can be written side by side; each lands in its own conversation."""

        def reply(conversation: Conversation) -> str:
            return conversation.user.reply(conversation.history)

        if self.pool is not None and any(waits_on_http(c.user) for c in conversations):
            replies = list(self.pool.map(reply, conversations))
        else:
            replies = [reply(c) for c in conversations]
        for conversation, text in zip(conversations, replies, strict=True):
            conversation.history.append({"role": "user", "content": text})


def profile(completions: Sequence[Any], profile_score: Sequence[float], **_: Any) -> list[float]:
    """The profile reward the rollout computed for each completion (named so TRL logs
    rewards/profile/mean)."""
    return [float(score) for score in profile_score]


def response(
    completions: Sequence[Any],
    response_score: Sequence[float],
    log_metric: Callable[[str, float], None] | None = None,
    turn: Sequence[float] = (),
    best_score: Sequence[float] = (),
    **_: Any,
) -> list[float]:
    """The response reward the rollout computed; also logs the turn mix and best-of-n reward."""
    if log_metric is not None and turn and best_score:
        log_metric("rollout/turn", fmean(turn))
        log_metric("rollout/best_reward", fmean(best_score))
    return [float(score) for score in response_score]
