"""What the gateway adds on top of the model: the same fast upstream reached directly, through the
rlpa gateway (PostgreSQL + Redis, a profile read and a version written every turn) and through
LiteLLM's proxy (one worker, no profile work). Prints a table; not a test.

Two gateway paths: `rlpa` (every turn asks for its version with `return_profile`, so the reply
waits for the commit) and `rlpa-behind` (RLPA_PROFILE_WRITE_BEHIND=true, turns that do not ask:
the reply goes out while the version commits). For `rlpa-behind` the check at the end is that
every answered turn's version is in PostgreSQL once the gateway has been stopped with SIGTERM.

    PYTHONPATH=. .venv/bin/python bench/gateway_overhead.py  # 2 rounds, 1 and 16 clients
    PYTHONPATH=. .venv/bin/python bench/gateway_overhead.py --seconds 2 --paths direct,rlpa

The upstream is the tests' scripted OpenAI server (tests.fixtures.upstreams) answering at once
with a valid RLPA output whose profile block teaches one new fact per turn, so every gateway turn
reads a profile and appends a version. Each server runs in its own process; the clients are one
asyncio process speaking raw HTTP/1.1 with keep-alive, so that the client's own cost stays small
and equal for every path. Rounds alternate the paths (and rotate their order), so that a slow
moment of this shared machine falls on all of them. At the end every version the gateway
reported to a client is looked up in PostgreSQL: an acknowledged version that is not there is
reported as lost.

LiteLLM (`pip install -e '.[bench]'`, or any virtualenv: --litellm PATH) runs as
`litellm --num_workers 1` with its local model cost map and no database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY = "sk-rlpa-bench-admin-key-0123456789"  # the gateway's admin key and LiteLLM's master key
REPLY = ["Sure", ",", " here", " you", " go", "."]
TURNS_PER_USER = 20  # users rotate, so profiles stay at a realistic size (under 20 traits)
# Each client speaks for a few users in turn, as an app's backend does: a person's next message
# comes after they have read the reply, not the instant it ends.
USERS_PER_CLIENT = 4
PATHS = ("direct", "rlpa", "rlpa-behind", "baseline", "litellm")
GATEWAYS = ("rlpa", "rlpa-behind", "baseline")
REPORTING = ("rlpa", "baseline")  # gateway paths whose turns report their version


def serve_upstream(url_file: Path) -> None:
    """The scripted upstream, answering streamed and whole requests at once; its URL is written
    to `url_file` once it listens."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from tests.fixtures import upstreams

    class FastUpstream(upstreams.ScriptedUpstream):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            # Nothing recorded or counted: the scripted answer only.
            body = json.loads(await Request(scope, receive).body())
            if body.get("stream"):
                await self._answer(body, scope, receive, send)
                return
            text = "".join(_respond(body))
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
            answer = {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "scripted"),
                "choices": [{**choice, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 7, "total_tokens": 14},
            }
            await JSONResponse(answer)(scope, receive, send)

    server = FastUpstream()
    server.script.respond = _respond
    server.start()
    url_file.write_text(server.url)
    server._thread.join()


def _respond(body: dict[str, Any]) -> list[str]:
    """An RLPA output that learns the last user message as a fact, then a short reply."""
    fact = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    return [f"<profile>\n- {fact}\n</profile>\n\n<response>\n", *REPLY, "\n</response>"]


class Connection:
    """One keep-alive HTTP/1.1 connection: a POST, and its whole answer (length or chunked)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: str) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._streams
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status = int((await reader.readline()).split()[1])
        found: dict[bytes, bytes] = {}
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            found[name.strip().lower()] = value.strip()
        if b"content-length" in found:
            data = await reader.readexactly(int(found[b"content-length"]))
        else:
            parts = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readline()
            data = b"".join(parts)
        if found.get(b"connection") == b"close":
            self.close()
        return status, data

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class Sample:
    seconds: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, int]] = field(default_factory=list)  # (user, version)
    answered: list[str] = field(default_factory=list)  # the user of each answered turn
    cpu_s: float = 0.0  # the path's own server processes, while measured


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its descendants so far (Linux /proc)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    family = {pid}
    for _ in range(4):  # a few generations deep is enough for a server and its workers
        family |= {child for child, (parent, _) in stats.items() if parent in family}
    total = sum(stats[member][1] for member in family if member in stats)
    return total / os.sysconf("SC_CLK_TCK")


def _version(data: bytes, stream: bool) -> int | None:
    if stream:
        last = data.rfind(b'"rlpa"')
        start = data.rfind(b"data: ", 0, last)
        data = data[start + len(b"data: ") : data.find(b"\n", last)] if last >= 0 else b"{}"
    block = json.loads(data).get("rlpa") or {}
    return block.get("version")


async def run_round(
    path: str, port: int, clients: int, stream: bool, seconds: float, tag: str, sample: Sample
) -> None:
    """`clients` clients sending turns back to back for `seconds`, each as its own user."""
    gateway = path in GATEWAYS
    headers = "" if path == "direct" else f"Authorization: Bearer {KEY}\r\n"
    deadline = time.perf_counter() + seconds
    replies: list[tuple[str, bytes]] = []

    async def client(index: int) -> None:
        conn = Connection(port)
        turn = 0
        try:
            while time.perf_counter() < deadline:
                group, seat = divmod(turn, USERS_PER_CLIENT * TURNS_PER_USER)
                user = f"{tag}-c{index}-u{group * USERS_PER_CLIENT + seat % USERS_PER_CLIENT}"
                body: dict[str, Any] = {
                    "model": "scripted",
                    "messages": [{"role": "user", "content": f"fact {turn} of {user}"}],
                    "user": user,
                    "stream": stream,
                }
                if path in REPORTING:
                    body["rlpa"] = {"return_profile": True}
                started = time.perf_counter()
                status, data = await conn.post(
                    "/v1/chat/completions", json.dumps(body).encode(), headers
                )
                sample.seconds.append(time.perf_counter() - started)
                if status != 200 or (stream and b"[DONE]" not in data) or b'"error"' in data:
                    sample.errors.append(f"{status}: {data[-300:]!r}")
                elif gateway:
                    replies.append((user, data))
                turn += 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    sample.elapsed += time.perf_counter() - started
    for user, data in replies:
        if path not in REPORTING:
            sample.answered.append(user)
            continue
        version = _version(data, stream)
        if not version:
            sample.errors.append(f"no stored version reported: {data[-300:]!r}")
        else:
            sample.acknowledged.append((user, version))


async def lost_versions(dsn: str, acknowledged: list[tuple[str, int]]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT u.external_id, v.version FROM profile_version v "
            "JOIN end_user u ON u.id = v.end_user_id"
        )
    finally:
        await conn.close()
    stored = {(row[0], row[1]) for row in rows}
    return len(set(acknowledged) - stored)


async def missing_versions(dsn: str, answered: list[str]) -> int:
    """Answered turns whose version is not in PostgreSQL (each turn teaches one new fact)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT u.external_id, count(*) FROM profile_version v "
            "JOIN end_user u ON u.id = v.end_user_id GROUP BY u.external_id"
        )
    finally:
        await conn.close()
    stored = {row[0]: row[1] for row in rows}
    turns: dict[str, int] = {}
    for user in answered:
        turns[user] = turns.get(user, 0) + 1
    return sum(max(0, n - stored.get(user, 0)) for user, n in turns.items())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            args, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _litellm_binary(given: str | None) -> str | None:
    for candidate in (given, str(Path(sys.executable).with_name("litellm")), "litellm"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _start_gateway(
    args: argparse.Namespace,
    root: Path,
    up_url: str,
    dsn: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {
        "PYTHONPATH": str(root),
        "RLPA_BACKEND": "openai",
        "RLPA_UPSTREAM_URLS": up_url,
        "RLPA_UPSTREAM_GRAMMAR": "none",
        "RLPA_DATABASE_URL": dsn.replace("postgresql://", "postgresql+asyncpg://"),
        "RLPA_REDIS_URL": args.redis,
        "RLPA_REDIS_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}:",
        "RLPA_ADMIN_API_KEY": KEY,
        **(extra_env or {}),
    }
    cmd = [sys.executable, *args.gateway_python, "serve", "--port", str(port)]
    process = _start(cmd, env, log, cwd=root)
    _wait_ready(f"http://127.0.0.1:{port}/health", process, log, 60)
    print(f"{log.stem} pid {process.pid} (py-spy can attach to it)", flush=True)
    return process, port


def _start_litellm(binary: str, up_url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: scripted\n    litellm_params:\n"
        f"      model: openai/scripted\n      api_base: {up_url}\n      api_key: bench\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    log = workdir / "litellm.log"
    cmd = [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    # Authentication on, as for the gateway: the master key, no database.
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": KEY,
    }
    process = _start([*cmd, "--num_workers", "1"], env, log)
    _wait_ready(f"http://127.0.0.1:{port}/health/liveliness", process, log, 120)
    return process, port


@contextlib.contextmanager
def servers(
    args: argparse.Namespace, workdir: Path, dsns: dict[str, str]
) -> Iterator[tuple[dict[str, int], dict[str, int]]]:
    """Upstream, gateways and (when found) LiteLLM, each in its own process; (path -> port,
    path -> pid)."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        log, url_file = workdir / "upstream.log", workdir / "upstream.url"
        cmd = [sys.executable, __file__, "--serve-upstream", str(url_file)]
        started.append(_start(cmd, {"PYTHONPATH": str(ROOT)}, log))
        for _ in range(300):
            if (url_file.exists() and url_file.read_text()) or started[-1].poll() is not None:
                break
            time.sleep(0.1)
        up_url = url_file.read_text()
        ports = {"direct": int(up_url.rsplit(":", 1)[1].split("/")[0])}
        pids = {"direct": started[-1].pid}
        roots = {"rlpa": ROOT, "rlpa-behind": ROOT, "baseline": args.baseline}
        behind = {"rlpa-behind": {"RLPA_PROFILE_WRITE_BEHIND": "true"}}
        for path, dsn in dsns.items():
            process, ports[path] = _start_gateway(
                args, roots[path], up_url, dsn, workdir / f"{path}.log", behind.get(path)
            )
            started.append(process)
            pids[path] = process.pid
        binary = _litellm_binary(args.litellm) if "litellm" in args.paths else None
        if binary is not None:
            process, ports["litellm"] = _start_litellm(binary, up_url, workdir)
            started.append(process)
            pids["litellm"] = process.pid
        elif "litellm" in args.paths:
            print("LiteLLM not found (pip install -e '.[bench]' or --litellm PATH): skipped")
        yield ports, pids
    finally:
        for process in reversed(started):
            _stop(process)


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0


def report(results: dict[tuple[str, bool, int], Sample]) -> None:
    columns = (
        "path|mode|clients|p50 (ms)|p99 (ms)|added p50|added p99|req/s|vs direct|CPU ms/req|errors"
    )
    print("\n| " + " | ".join(columns.split("|")) + " |")
    print("|" + " --- |" * len(columns.split("|")))
    for (path, stream, clients), sample in sorted(
        results.items(), key=lambda kv: (kv[0][2], kv[0][1], PATHS.index(kv[0][0]))
    ):
        direct = results[("direct", stream, clients)]
        rate = len(sample.seconds) / sample.elapsed
        base_rate = len(direct.seconds) / direct.elapsed
        p50, p99 = _pct(sample.seconds, 50), _pct(sample.seconds, 99)
        added = "" if path == "direct" else f"+{p50 - _pct(direct.seconds, 50):.2f}"
        added99 = "" if path == "direct" else f"+{p99 - _pct(direct.seconds, 99):.2f}"
        mode = "stream" if stream else "whole"
        cpu_ms = 1000 * sample.cpu_s / len(sample.seconds)
        print(
            f"| {path} | {mode} | {clients} | {p50:.2f} | {p99:.2f} | {added} | {added99} "
            f"| {rate:.0f} | {rate / base_rate:.2f}x | {cpu_ms:.2f} | {len(sample.errors)} |"
        )


async def measure(
    args: argparse.Namespace, ports: dict[str, int], pids: dict[str, int]
) -> dict[tuple[str, bool, int], Sample]:
    results: dict[tuple[str, bool, int], Sample] = {}
    paths = [p for p in PATHS if p in ports]
    for round_ in range(args.rounds):
        for clients in args.clients:
            for stream in (False, True):
                order = paths[round_ % len(paths) :] + paths[: round_ % len(paths)]
                for path in order:
                    tag = f"r{round_}-{clients}-{int(stream)}-{path}"
                    # A short warm-up on each round's fresh users (connections, caches), unmeasured.
                    await run_round(path, ports[path], clients, stream, 0.3, tag + "w", Sample())
                    sample = results.setdefault((path, stream, clients), Sample())
                    cpu = cpu_seconds(pids[path])
                    await run_round(path, ports[path], clients, stream, args.seconds, tag, sample)
                    sample.cpu_s += cpu_seconds(pids[path]) - cpu
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    report(results)
    for key, sample in results.items():
        for error in sample.errors[:3]:
            print(f"error {key}: {error}")
    return results


async def check_stored(results: dict[tuple[str, bool, int], Sample], dsns: dict[str, str]) -> None:
    """After the gateways were stopped (SIGTERM): every version they owed is in PostgreSQL."""
    for path, dsn in dsns.items():
        samples = [s for (p, _, _), s in results.items() if p == path]
        if path in REPORTING:
            acked = [pair for s in samples for pair in s.acknowledged]
            lost = await lost_versions(dsn, acked)
            print(f"{path}: {len(acked)} versions acknowledged to clients, {lost} not stored")
        else:
            answered = [user for s in samples for user in s.answered]
            missing = await missing_versions(dsn, answered)
            print(f"{path}: {len(answered)} turns answered, {missing} versions not in PostgreSQL")


async def main(args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(ADMIN_DSN)
    workdir = Path(tempfile.mkdtemp(prefix="rlpa-bench-"))
    dsns: dict[str, str] = {}
    try:
        for path in GATEWAYS:
            if path not in args.paths or (path == "baseline" and args.baseline is None):
                continue
            name = f"rlpa_bench_{path}_{uuid.uuid4().hex[:8]}"
            await admin.execute(f'CREATE DATABASE "{name}"')
            if not args.synchronous_commit:
                await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
            dsns[path] = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
            # Each gateway's own migrations: the baseline may be older than this checkout.
            url = dsns[path].replace("postgresql://", "postgresql+asyncpg://")
            code = "import sys; from server import migrate; migrate.upgrade(sys.argv[1])"
            root = args.baseline if path == "baseline" else ROOT
            env = {**os.environ, "PYTHONPATH": str(root)}
            run = functools.partial(subprocess.run, cwd=root, env=env, check=True)
            await asyncio.to_thread(run, [sys.executable, "-c", code, url])
        with servers(args, workdir, dsns) as (ports, pids):
            results = await measure(args, ports, pids)
        await check_stored(results, dsns)
    finally:
        for dsn in dsns.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()
        print(f"server logs in {workdir}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,16", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--seconds", type=float, default=4.0, help="per path, mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paths", default=",".join(PATHS), type=lambda s: s.split(","))
    parser.add_argument("--litellm", help="the litellm executable (default: beside python, PATH)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of rlpa (e.g. `git archive HEAD | tar -x -C DIR`) run as the "
        "path `baseline`, side by side: before and after in one run",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument(
        "--no-synchronous-commit",
        dest="synchronous_commit",
        action="store_false",
        help="commit without waiting for the WAL flush (the bench database only): the "
        "gateway's own cost apart from the disk's fsync",
    )
    parser.add_argument(
        "--gateway-python",
        default="-m server.cli",
        type=str.split,
        help="what python runs for the gateway (e.g. a profiler's wrapper)",
    )
    parser.add_argument("--serve-upstream", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_upstream:
        serve_upstream(arguments.serve_upstream)
    else:
        if "direct" not in arguments.paths:
            arguments.paths.append("direct")  # added latency is measured against it
        asyncio.run(main(arguments))
