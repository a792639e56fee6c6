"""Replicas under load: throughput and latency of N gateway replicas behind a round-robin proxy
against one, and whether every change acknowledged to a client is in PostgreSQL after SIGTERM
reaches every replica while the load goes on. Prints a table; not a test.

    PYTHONPATH=. .venv/bin/python bench/replica_load.py                # 1 and 2 replicas
    PYTHONPATH=. .venv/bin/python bench/replica_load.py --replicas 1,2,3 --clients 16 --rounds 3

What a scaled-out deployment shares, as the fault tests run it (tests.fixtures.replicas): `rlpa
serve` processes over one throwaway PostgreSQL (no fsync: the gateway tier is measured, not the
disk) and one Redis, in front of them tests.fixtures.proxy (each client connection to the next
replica in turn, as an L4 balancer or a Kubernetes Service does), and as the model the fast
scripted upstream of bench/gateway_overhead.py, which answers at once with a profile block that
teaches one new fact per turn: every turn reads a profile and writes a version, and the model is
never the bottleneck. For each mode and replica count the replicas start afresh and serve each
number of clients in turn, measured for `--seconds` after a short warm-up; at the end of the
last, SIGTERM goes to every replica at once while the clients keep sending. Once every replica
has exited, each acknowledged change (a 200 whose `rlpa.changed` is true, by its X-Request-Id)
is looked up among the stored versions. Rounds alternate the order of the replica counts, so
that a busy moment of a shared machine falls on each of them; a row adds up its rounds. With
`behind` (RLPA_PROFILE_WRITE_BEHIND) a reply goes out before its version commits: that is the
mode where a drained shutdown matters.

Every process shares this machine's cores: on a machine with few, more replicas add no CPU, and
the table says what the tier costs rather than how far it scales.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.gateway_overhead import Connection, cpu_seconds
from tests.fixtures.db import ADMIN_KEY
from tests.fixtures.procs import ThrowawayPostgres, ThrowawayRedis, started
from tests.fixtures.proxy import RoundRobinProxy
from tests.fixtures.replicas import ROOT, Replica, gateway_env, migrate_database

MODES = {"wait": {}, "behind": {"RLPA_PROFILE_WRITE_BEHIND": "true"}}
# The fault tests' short database timeouts off: the defaults, as deployed.
DEFAULTS = {
    "RLPA_DB_CONNECT_TIMEOUT_S": None,
    "RLPA_DB_STATEMENT_TIMEOUT_S": None,
    "RLPA_DB_POOL_TIMEOUT_S": None,
    "RLPA_SHUTDOWN_GRACE_S": "10",
}
TURNS_PER_USER = 20  # users rotate, so that profiles stay small (the trait cap is 64)
USERS_PER_CLIENT = 4
WARMUP_S = 1.0
TAIL_S = 5.0  # the bound on the clients' sending once SIGTERM went out


@dataclass
class Run:
    replicas: int
    mode: str
    clients: int
    seconds: list[float] = field(default_factory=list)  # latencies inside the measured window
    window_s: float = 0.0
    errors: list[str] = field(default_factory=list)  # inside the window
    acknowledged: list[str] = field(default_factory=list)  # request ids, the whole run
    found: int = 0
    unclean_exits: int = 0  # replicas that did not exit 0 by themselves after SIGTERM
    cpu_s: float = 0.0  # the replicas' own CPU inside the window

    @property
    def cpu_ms(self) -> float:
        """The replicas' CPU per measured turn: what the tier costs, whatever else is running."""
        return 1000 * self.cpu_s / len(self.seconds) if self.seconds else 0.0

    @property
    def rate(self) -> float:
        return len(self.seconds) / self.window_s if self.window_s else 0.0

    def pct(self, q: int) -> float:
        if len(self.seconds) < 2:
            return 0.0
        return statistics.quantiles(self.seconds, n=100)[q - 1] * 1000


class Clock:
    """The phases every client reads: warm-up, the measured window, then the tail."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter() + WARMUP_S
        self.end = self.start + seconds
        self.stopped = asyncio.Event()  # every client stops sending

    def measured(self, began: float, ended: float) -> bool:
        return self.start <= began and ended <= self.end


async def client(index: int, port: int, run: Run, clock: Clock, tag: str) -> None:
    """Turns back to back on one keep-alive connection, each for the next of this client's
    users, until the clock stops them or the replica behind the connection has gone."""
    headers_base = f"Authorization: Bearer {ADMIN_KEY}\r\n"
    conn = Connection(port)
    turn = 0
    try:
        while not clock.stopped.is_set():
            group, seat = divmod(turn, USERS_PER_CLIENT * TURNS_PER_USER)
            user = f"{tag}-c{index}-u{group * USERS_PER_CLIENT + seat % USERS_PER_CLIENT}"
            request_id = str(uuid.uuid4())
            body = {
                "model": "scripted",
                "messages": [{"role": "user", "content": f"fact {turn} of {user}"}],
                "user": user,
            }
            headers = f"{headers_base}X-Request-Id: {request_id}\r\n"
            began = time.perf_counter()
            try:
                status, data = await conn.post(
                    "/v1/chat/completions", json.dumps(body).encode(), headers
                )
            except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if time.perf_counter() > clock.end:
                    return  # SIGTERM closed it: this client is done
                status, data = 0, repr(exc).encode()
            ended = time.perf_counter()
            answer = json.loads(data) if status == 200 else {}
            if status == 200 and (answer.get("rlpa") or {}).get("changed"):
                run.acknowledged.append(request_id)
            if clock.measured(began, ended):
                run.seconds.append(ended - began)
                if status != 200:
                    run.errors.append(f"{status}: {data[-200:]!r}")
            turn += 1
    finally:
        conn.close()


def _cpu(nodes: list[Replica]) -> float:
    return sum(cpu_seconds(node.process.pid) for node in nodes if node.process is not None)


def _start_all(nodes: list[Replica]) -> None:
    with ThreadPoolExecutor(len(nodes)) as pool:
        for done in [pool.submit(node.start) for node in nodes]:
            done.result()


def _sigterm_all(nodes: list[Replica]) -> int:
    """SIGTERM to every replica at once; how many did not exit 0 by themselves."""
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.stop(), nodes))
    return sum(node.process is None or node.process.returncode != 0 for node in nodes)


async def stored(dsn: str, request_ids: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchval(
            "SELECT count(DISTINCT request_id) FROM profile_version "
            "WHERE request_id = ANY($1::text[])",
            request_ids,
        )
    finally:
        await conn.close()
    return int(found)


async def measure(
    run: Run, nodes: list[Replica], proxy: RoundRobinProxy, seconds: float, *, sigterm: bool = True
) -> None:
    """`run.clients` clients through `proxy` for a warm-up and `seconds`; then, with `sigterm`,
    SIGTERM to every replica while they keep sending."""
    clock = Clock(seconds)
    tag = f"r{run.replicas}-{run.mode}-{run.clients}-{uuid.uuid4().hex[:6]}"
    tasks = [
        asyncio.create_task(client(i, proxy.port, run, clock, tag)) for i in range(run.clients)
    ]
    await asyncio.sleep(clock.start - time.perf_counter())
    cpu = _cpu(nodes)
    await asyncio.sleep(clock.end - time.perf_counter())
    run.cpu_s += _cpu(nodes) - cpu
    run.window_s += clock.end - clock.start
    if sigterm:
        # While the clients keep sending: replies in flight drain, later turns are refused.
        run.unclean_exits += await asyncio.to_thread(_sigterm_all, nodes)
    clock.stopped.set()
    await asyncio.wait_for(asyncio.gather(*tasks), TAIL_S + 30)


def session(
    args: argparse.Namespace, runs: list[Run], env: dict[str, str | None], workdir: Path, dsn: str
) -> None:
    """Fresh replicas (as many, in the mode, as `runs[0]` says) through every run in turn; SIGTERM
    during the last; then each run's acknowledged changes looked up."""
    replicas, mode = runs[0].replicas, runs[0].mode
    env = {**env, **MODES[mode]}
    nodes = [Replica(f"{n}", env, workdir / f"replica-{mode}-{n}.log") for n in range(replicas)]
    proxy = RoundRobinProxy([node.port for node in nodes])
    before = [len(run.acknowledged) for run in runs]
    try:
        _start_all(nodes)
        proxy.start()
        for run in runs:
            last = run is runs[-1]
            asyncio.run(measure(run, nodes, proxy, args.seconds, sigterm=last))
        for run, count in zip(runs, before, strict=True):
            run.found += asyncio.run(stored(dsn, run.acknowledged[count:]))
    finally:
        proxy.stop()
        for node in nodes:
            node.kill()


def table(runs: list[Run]) -> str:
    columns = [
        "replicas",
        "writes",
        "clients",
        "req/s",
        "p50 (ms)",
        "p99 (ms)",
        "replica CPU (ms/turn)",
        "errors",
        "acknowledged changes",
        "found after SIGTERM",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for run in runs:
        found = f"{run.found}"
        if run.unclean_exits:
            found += f" ({run.unclean_exits} replicas killed)"
        cells = [
            str(run.replicas),
            run.mode,
            str(run.clients),
            f"{run.rate:.0f}",
            f"{run.pct(50):.1f}",
            f"{run.pct(99):.1f}",
            f"{run.cpu_ms:.1f}",
            str(len(run.errors)),
            str(len(run.acknowledged)),
            found,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _serve_upstream(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """bench/gateway_overhead.py's fast scripted upstream, in its own process; its URL."""
    url_file = workdir / "upstream.url"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "gateway_overhead.py"), "--serve-upstream", url_file],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
    )
    for _ in range(300):
        if (url_file.exists() and url_file.read_text()) or process.poll() is not None:
            break
        time.sleep(0.1)
    if not (url_file.exists() and url_file.read_text()):
        process.kill()
        raise RuntimeError("the scripted upstream did not start")
    return process, url_file.read_text()


def _numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=_numbers, default=[1, 2])
    parser.add_argument("--clients", type=_numbers, default=[4, 16])
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES))
    parser.add_argument("--seconds", type=float, default=3.0, help="measured, per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="rlpa-replica-load-"))
    pg = ThrowawayPostgres()
    upstream: subprocess.Popen[bytes] | None = None
    runs: dict[tuple[str, int, int], Run] = {}
    began = time.monotonic()
    try:
        upstream, upstream_url = _serve_upstream(workdir)
        pg.initdb()
        pg.start()
        pg.create_database()
        migrate_database(pg.url)
        with started(ThrowawayRedis()) as redis_server:
            prefix = f"rlpa-load-{uuid.uuid4().hex[:8]}:"
            env = {**gateway_env(upstream_url, pg.url, redis_server.url, prefix), **DEFAULTS}
            for round_ in range(args.rounds):
                turn = round_ % len(args.replicas)
                order = args.replicas[turn:] + args.replicas[:turn]
                for mode in args.modes:
                    for replicas in order:
                        these = [
                            runs.setdefault((mode, c, replicas), Run(replicas, mode, c))
                            for c in args.clients
                        ]
                        session(args, these, env, workdir, pg.dsn)
                        for row in table(these).splitlines()[2:]:
                            print(f"round {round_ + 1}: {row}", file=sys.stderr, flush=True)
    finally:
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=10)
        pg.destroy()
        if args.keep_logs:
            print(f"logs: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{os.cpu_count()} CPUs, {time.monotonic() - began:.0f} s\n")
    for run in runs.values():
        for error in run.errors[:3]:
            print(f"error ({run.replicas} replicas, {run.mode}, {run.clients}): {error}")
    order = sorted(runs, key=lambda key: (args.modes.index(key[0]), key[1], key[2]))
    print(table([runs[key] for key in order]))
    return 0 if all(run.found == len(run.acknowledged) for run in runs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
