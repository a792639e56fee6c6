"""Embedded decode speed: through the gateway vs llama-cpp-python called directly, with the same
GGUF, prompt (the RLPA prompt), grammar, sampling settings and seeds. Prints a table; not a test.

    .venv/bin/python bench/embedded_decode.py [--runs 5] [--max-tokens 128] [--concurrency 4]

"first visible token" is the first token of the reply (after the profile block) in both cases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

from server import rlpa
from server.backends import default_gguf_path, embedded_adapter, served_model_name
from server.settings import Settings

MESSAGES = [{"role": "user", "content": "Hi! I'm a nurse in Seattle. Any tips for a day off?"}]


def direct_run(
    llama: Any, grammar: Any, settings: Settings, seed: int, max_tokens: int
) -> dict[str, float]:
    prompt = rlpa.build_messages(MESSAGES, None)
    start = time.perf_counter()
    first_visible = None
    text = ""
    tokens = 0
    for chunk in llama.create_chat_completion(
        prompt,
        stream=True,
        max_tokens=max_tokens,
        temperature=settings.embedded_temperature,
        top_p=settings.embedded_top_p,
        top_k=40,
        min_p=0.05,
        repeat_penalty=settings.embedded_repeat_penalty,
        seed=seed,
        grammar=grammar,
    ):
        piece = chunk["choices"][0]["delta"].get("content") or ""
        if not piece:
            continue
        tokens += 1
        text += piece
        if first_visible is None and "<response>" in text:
            tail = text.split("<response>", 1)[1]
            if tail.strip():
                first_visible = time.perf_counter() - start
    total = time.perf_counter() - start
    return {"ttft": first_visible or total, "total": total, "tokens": tokens}


async def gateway_run(base: str, model: str, seed: int, max_tokens: int) -> dict[str, float]:
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": max_tokens,
        "seed": seed,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first_visible = None
    tokens = 0
    async with httpx.AsyncClient(timeout=300) as http:
        async with http.stream("POST", f"{base}/v1/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk.get("choices", []):
                    if first_visible is None and (choice["delta"].get("content") or "").strip():
                        first_visible = time.perf_counter() - start
    total = time.perf_counter() - start
    return {"ttft": first_visible or total, "total": total, "tokens": tokens}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(base: str) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            try:
                if (await http.get(f"{base}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the gateway did not become ready")


def summarize(runs: list[dict[str, float]]) -> tuple[float, float]:
    tps = statistics.median(r["tokens"] / r["total"] for r in runs)
    ttft = statistics.median(r["ttft"] for r in runs)
    return tps, ttft


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    from llama_cpp import Llama
    from llama_cpp.llama_grammar import LlamaGrammar

    db = tempfile.mkdtemp()
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{db}/bench.db")  # type: ignore[call-arg]

    model = served_model_name(settings) or "rlpa"
    llama = Llama(
        model_path=default_gguf_path(),
        lora_path=embedded_adapter(settings),
        n_ctx=settings.n_ctx,
        verbose=False,
    )
    grammar = LlamaGrammar.from_string(rlpa.FORMAT_GBNF, verbose=False)
    direct_run(llama, grammar, settings, 0, 8)  # warm-up
    direct = [direct_run(llama, grammar, settings, s, args.max_tokens) for s in range(args.runs)]
    llama.close()

    # The gateway runs as its own process, as in production: a client in the same process
    # would compete with it for the GIL.
    port = _free_port()
    env = {**os.environ, "RLPA_DATABASE_URL": settings.database_url, "RLPA_PORT": str(port)}
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [sys.executable, "-m", "server.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(base)
        await gateway_run(base, model, 0, 8)  # warm-up
        gateway = [await gateway_run(base, model, s, args.max_tokens) for s in range(args.runs)]
        start = time.perf_counter()
        loaded = await asyncio.gather(
            *(gateway_run(base, model, s, args.max_tokens) for s in range(args.concurrency))
        )
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()

    d_tps, d_ttft = summarize(direct)
    g_tps, g_ttft = summarize(gateway)
    print(
        f"\nembedded decode, SmolLM2-135M Q4_1, {args.runs} runs x {args.max_tokens} tokens "
        "(medians)\n"
    )
    print("| path | tokens/s | first visible token (s) |")
    print("| --- | --- | --- |")
    print(f"| llama-cpp-python direct | {d_tps:.1f} | {d_ttft:.3f} |")
    print(f"| gateway (HTTP, SSE, splitter, profile store) | {g_tps:.1f} | {g_ttft:.3f} |")
    print(f"| gateway / direct | {g_tps / d_tps:.2f} | {g_ttft / d_ttft:.2f} |")
    total_tokens = sum(r["tokens"] for r in loaded)
    print(
        f"\nunder load: {args.concurrency} concurrent streams, {total_tokens} tokens in "
        f"{wall:.1f}s = {total_tokens / wall:.1f} tokens/s aggregate (requests are queued: "
        "one llama.cpp context decodes one sequence at a time)"
    )


if __name__ == "__main__":
    asyncio.run(main())
