"""The README runs as written: its shell and Python examples, in the order a reader meets them,
against `rlpa serve` on the embedded default (a temporary SQLite database, no Redis, loopback, so
authentication off), started as a reader starts it.

Every `bash` and `python` block runs unless SKIPPED names it, and why. `127.0.0.1:8000` becomes
the test server's port; curl gets `--fail-with-body`, so an HTTP error fails its block; a shell
block runs under `set -euo pipefail` with the virtualenv's `rlpa` first on PATH, and a Python
block passes when it raises nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.live import free_port

pytestmark = pytest.mark.slow  # the real embedded model, in a server process of its own

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
README_ADDRESS = "127.0.0.1:8000"
# Keyed by how a block's first line starts: each must name exactly one block.
SKIPPED = {
    "make serve": "installs the project and serves on port 8000 (this test starts its own server)",
    "export RLPA_DATABASE_URL=postgresql": "needs PostgreSQL, Redis and vLLM hosts; serves",
    # The block runs for real in `make compose-smoke` (deploy/smoke/compose_smoke.py, run by
    # .ci/run): both profiles with podman-compose on images built from the Dockerfile, vLLM's
    # place taken by llama.cpp's server. Here it would rebuild those images (minutes) for a
    # second time in one CI run.
    "docker compose": "run by `make compose-smoke` (podman; the gpu profile without a GPU)",
    "rlpa train sft": "trains for hours and needs the train extra",
    ".venv/bin/python bench/profile_store.py": "a benchmark: seeds a million users in PostgreSQL",
    ".venv/bin/python bench/gateway_overhead.py": "a benchmark: minutes of load on four servers",
    "PYTHONPATH=. .venv/bin/python bench/embedded_decode.py": "a benchmark: minutes of decoding",
}
# Every curl in a shell block fails on an HTTP error, and says so.
CURL_FAILS = 'curl() { command curl --fail-with-body --show-error "$@"; }\n'


@dataclass(frozen=True)
class Block:
    id: str
    language: str
    code: str

    @property
    def skip_reason(self) -> str | None:
        first = self.code.lstrip().splitlines()[0]
        return next((why for key, why in SKIPPED.items() if first.startswith(key)), None)


def _blocks() -> list[Block]:
    found: list[Block] = []
    heading, counts = "top", dict[str, int]()
    lines = iter((ROOT / "README.md").read_text().splitlines())
    for line in lines:
        if line.startswith("## "):
            words = re.findall(r"[a-z0-9]+", line[3:].lower())
            heading = "-".join(words[:3])  # ids short enough to read in a test report
        elif line.startswith("```"):
            body = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                body.append(inner)
            counts[heading] = counts.get(heading, 0) + 1
            block_id = f"{heading}-{counts[heading]}"
            found.append(Block(block_id, line[3:].strip(), "\n".join(body) + "\n"))
    return found


BLOCKS = _blocks()
RUN = [b for b in BLOCKS if b.skip_reason is None]


def test_every_readme_example_is_run_or_skipped_for_a_reason() -> None:
    assert {b.language for b in BLOCKS} <= {"bash", "python"}, "a new kind of block: run it?"
    for key in SKIPPED:
        named = [b.id for b in BLOCKS if b.code.lstrip().startswith(key)]
        assert len(named) == 1, f"SKIPPED[{key!r}] names {named}"
    assert {"talk-to-it-1", "talk-to-it-2", "read-and-manage-1"} <= {b.id for b in RUN}


@dataclass(frozen=True)
class Gateway:
    port: int
    env: dict[str, str]
    root: Path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`rlpa serve` with nothing configured but a fresh database and a free port."""
    root = tmp_path_factory.mktemp("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLPA_")}
    env["RLPA_DATABASE_URL"] = f"sqlite+aiosqlite:///{root}/readme.db"
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    port = free_port()
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [BIN / "rlpa", "serve", "--port", str(port)],
            cwd=root,  # no .env of the checkout
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not _ready(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rlpa serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Gateway(port, env, root)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.parametrize("block", RUN, ids=[b.id for b in RUN])
def test_readme_example_runs_as_written(gateway: Gateway, block: Block) -> None:
    """In README order, on one server: later examples build on what earlier ones did."""
    code = block.code.replace(README_ADDRESS, f"127.0.0.1:{gateway.port}")
    if block.language == "bash":
        args = ["bash", "-euo", "pipefail", "-c", CURL_FAILS + code]
    else:
        args = [sys.executable, "-c", code]
    run = subprocess.run(
        args, cwd=gateway.root, env=gateway.env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"{block.code}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
