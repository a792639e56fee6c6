"""The two packages meet only at the contract: server/ never imports torch or training/, and
training/ imports nothing from server/ but server.rlpa. The gateway runs on what the `embedded`
extra installs (`make serve`): nothing of the `train` extra, nor of the `otel` extra while
RLPA_OTLP_ENDPOINT is unset."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.backends import DEFAULT_ADAPTED_MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> Iterator[tuple[Path, str]]:
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module
                yield from ((path, f"{node.module}.{alias.name}") for alias in node.names)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _train_extra_modules() -> set[str]:
    """The top-level import names of every distribution in the `train` extra (installed here)."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    modules: dict[str, set[str]] = {}
    for requirement in extra["train"]:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert name is not None, requirement
        modules[_normal(name.group())] = set()
    for module, dists in importlib.metadata.packages_distributions().items():
        for dist in dists:
            if _normal(dist) in modules and not module.startswith("_"):
                modules[_normal(dist)].add(module)
    assert all(modules.values()), f"the train extra is not installed: {modules}"
    return set().union(*modules.values())


def test_server_never_imports_the_train_extra_or_training() -> None:
    banned = _train_extra_modules() | {"training"}
    bad = [(str(path), name) for path, name in _imports("server") if name.split(".")[0] in banned]
    assert bad == []


def test_training_imports_only_the_contract_from_server() -> None:
    bad = [
        (str(path), name)
        for path, name in _imports("training")
        if name.split(".")[0] == "server"
        and name not in ("server", "server.rlpa")
        and not name.startswith("server.rlpa.")
    ]
    assert bad == []


def test_the_chat_domain_imports_nothing_of_the_openai_wire_layer() -> None:
    bad = [
        (str(path), name)
        for path, name in _imports("server/chat")
        if name == "server.openai" or name.startswith("server.openai.")
    ]
    assert bad == []


def test_importing_the_gateway_loads_no_torch() -> None:
    code = "import sys, server.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Run in a fresh interpreter: the train extra's modules (and training/) and the otel extra's
# cannot be imported, as on a `make serve` install; the gateway is built, started on the embedded
# default (model loaded) and answers a chat turn, untraced. A blocked name is a package or a
# dotted subpackage: the otel extra's SDK and exporter live in the `opentelemetry` namespace,
# whose API FastAPI itself imports.
_BLOCKED_RUN = """if True:
    import asyncio, importlib.abc, json, sys, tempfile

    BLOCKED, MODEL = set(json.loads(sys.argv[1])), sys.argv[2]

    def blocked(name):
        return any(name == b or name.startswith(b + ".") for b in BLOCKED)

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if blocked(name):
                raise ModuleNotFoundError(f"{name} is not installed by `make serve`", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    import httpx
    import server.cli
    from server.app import create_app
    from server.settings import Settings

    async def main():
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/serve.db"
        app = create_app(Settings(_env_file=None, database_url=url))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/ready")).status_code == 200
                messages = [{"role": "user", "content": "hi"}]
                turn = {"model": MODEL, "user": "u", "max_tokens": 8, "messages": messages}
                reply = await client.post("/v1/chat/completions", json=turn)
                assert reply.status_code == 200, reply.text

    asyncio.run(main())
    print(json.dumps(sorted(m for m in sys.modules if blocked(m))))
"""


OTEL_EXTRA = {"opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto"}


@pytest.mark.slow
def test_the_gateway_runs_without_the_train_or_otel_extra(tmp_path: Path) -> None:
    blocked = _train_extra_modules() | {"training"} | OTEL_EXTRA
    assert {"torch", "transformers", "trl", "datasets", "scipy", "matplotlib"} <= blocked
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            _BLOCKED_RUN,
            json.dumps(sorted(blocked)),
            DEFAULT_ADAPTED_MODEL_NAME,
        ],
        cwd=tmp_path,  # no .env of the checkout
        env={k: v for k, v in os.environ.items() if not k.startswith("RLPA_")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.splitlines()[-1]) == []
