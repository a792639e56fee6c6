"""The RL rollout's endpoint calls run side by side on a bounded pool: a batch's LLM matcher and
judge calls and its LLM users' replies, against a real OpenAI-compatible server on loopback that
answers slowly and counts the requests it is serving at once. Same answers as one at a time."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from server.rlpa import render_output
from training.components import make_simulator
from training.data import generate_profiles
from training.endpoint import Endpoint
from training.rewards import LexicalMatcher, OfflineResponseJudge
from training.rl_rollout import Conversation, ConversationRollout, Scorer, state_key
from training.simulators import ScriptedUser

DELAY = 0.2
BATCH = 16


class SlowEndpoint(ThreadingHTTPServer):
    """/v1/chat/completions answering after `delay` seconds, from the prompt alone: the matcher
    gets the number of inferred traits that are, word for word, true ones; the judge "yes" when
    the reply asks a question; the user a line naming the seed it was sent, so a reply that
    landed in another conversation shows."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.in_flight = self.max_in_flight = self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reset(self, delay: float) -> None:
        self.delay, self.max_in_flight, self.requests = delay, 0, 0

    def answer(self, body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("Compare two descriptions"):
            inferred, true = (
                [line.split(". ", 1)[1] for line in block.strip().splitlines()]
                for block in re.findall(r"traits:\n(.*?)\n\n", prompt, re.S)
            )
            return json.dumps({"matches": len(set(inferred) & set(true))})
        if "keep chatting" in prompt:
            reply = prompt.split("The assistant's reply: ", 1)[1].split("\n", 1)[0]
            return "yes" if "?" in reply else "no"
        return f"Hm, okay. I am seed {body['seed']}."


class _Handler(BaseHTTPRequestHandler):
    server: SlowEndpoint
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        fake = self.server
        with fake.lock:
            fake.in_flight += 1
            fake.requests += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(fake.delay)
            content = fake.answer(body)
        finally:
            with fake.lock:
                fake.in_flight -= 1
        message = {"role": "assistant", "content": content}
        data = json.dumps({"choices": [{"index": 0, "message": message}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def slow_endpoint() -> Iterator[SlowEndpoint]:
    server = SlowEndpoint(DELAY)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _batch() -> tuple[list[str], list[Conversation]]:
    """16 candidates of 16 users: 0-2 true traits and one invented, a reply that asks or not."""
    completions, owners = [], []
    for index, profile in enumerate(generate_profiles(BATCH, seed=7)):
        user = ScriptedUser()
        user.start(profile, index)
        owners.append(Conversation(profile, user, [{"role": "user", "content": "Hi there."}]))
        traits = [*profile.texts()[: index % 3], f"collects stamp number {index}"]
        reply = "What do you cook most?" if index % 2 else "Nice weather today."
        completions.append(render_output(traits, reply))
    return completions, owners


def test_a_batch_is_scored_concurrently_with_the_same_scores(
    slow_endpoint: SlowEndpoint,
) -> None:
    from training import rl
    from training.config import RLRunConfig, load_config

    config = load_config(
        RLRunConfig,
        "rl_qwen_gpu",
        {
            "endpoint_url": slow_endpoint.url,
            "endpoint_concurrency": BATCH,
            "profile_target": "true",
        },
    )
    completions, owners = _batch()

    slow_endpoint.reset(delay=0.0)
    sequential = rl.make_scorer(config).score(completions, owners)
    assert slow_endpoint.max_in_flight == 1 and slow_endpoint.requests == 2 * BATCH

    slow_endpoint.reset(delay=DELAY)
    pool = rl.endpoint_pool(config)
    try:
        concurrent = rl.make_scorer(config, pool).score(completions, owners)
    finally:
        pool.shutdown()

    assert concurrent == sequential
    # Each score is its own candidate's: i % 3 true traits of the user's, plus one invented.
    sizes = [len(owner.profile.traits) for owner in owners]
    assert concurrent[0] == [2 * (i % 3) / (i % 3 + 1 + n) for i, n in enumerate(sizes)]
    assert concurrent[1] == [float(i % 2) for i in range(BATCH)]
    # Sequentially the 32 requests would be 32 x 0.2 s; on the pool a batch's are served at once.
    assert slow_endpoint.requests == 2 * BATCH
    assert BATCH // 2 < slow_endpoint.max_in_flight <= BATCH


def test_the_pool_bounds_the_requests_in_flight(slow_endpoint: SlowEndpoint) -> None:
    from training import rewards

    completions, owners = _batch()
    scorer = Scorer(
        rewards.LLMJudgeMatcher(slow_endpoint.url, "judge"),
        OfflineResponseJudge(),  # offline: stays off the pool, no requests
        target="true",
    )
    with ThreadPoolExecutor(4) as pool:
        scorer.pool = pool
        profile, _ = scorer.score(completions, owners)

    assert slow_endpoint.requests == BATCH
    assert slow_endpoint.max_in_flight == 4
    scorer.pool = None
    assert scorer.score(completions, owners)[0] == profile


def _rollout(
    endpoint: SlowEndpoint, tokenizer: Any, pool: ThreadPoolExecutor | None
) -> ConversationRollout:
    profiles = generate_profiles(8, seed=3)
    users = make_simulator("llm", Endpoint(url=endpoint.url, model="user"))
    scorer = Scorer(LexicalMatcher(), OfflineResponseJudge())
    rollout = ConversationRollout(profiles, users, scorer, tokenizer, 2, 3, seed=5, pool=pool)
    reply = tokenizer(render_output([], "What do you do for fun?"), add_special_tokens=False)

    def generate(prompt_ids: list[list[int]], n: int) -> tuple[list[list[int]], None]:
        return [[*reply["input_ids"], tokenizer.eos_token_id] for _ in prompt_ids], None

    rollout.generate = generate
    return rollout


def test_llm_users_of_a_batch_reply_concurrently_each_in_its_own_chat(
    slow_endpoint: SlowEndpoint, smollm2_tokenizer: Any
) -> None:
    keys = [state_key(conversation, 0) for conversation in range(8) for _ in range(2)]

    slow_endpoint.reset(delay=0.0)
    sequential = _rollout(slow_endpoint, smollm2_tokenizer, pool=None)
    sequential(keys, trainer=None)
    assert slow_endpoint.max_in_flight == 1

    slow_endpoint.reset(delay=DELAY)
    with ThreadPoolExecutor(8) as pool:
        concurrent = _rollout(slow_endpoint, smollm2_tokenizer, pool)
        concurrent(keys, trainer=None)

    # The 8 openers, then the 8 replies after the chosen turn, each batch at once.
    assert slow_endpoint.requests == 16
    assert 4 < slow_endpoint.max_in_flight <= 8
    for index in range(8):
        history = concurrent.live[index].history
        assert history == sequential.live[index].history
        assert [m["role"] for m in history] == ["user", "assistant", "user"]
        # LLMUser sends seed + len(history): 5 + index for the opener, 7 + index after a turn.
        assert history[0]["content"].endswith(f"seed {5 + index}.")
        assert history[2]["content"].endswith(f"seed {7 + index}.")
