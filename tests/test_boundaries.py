"""The two packages meet only at the contract: server/ never imports torch or training/, and
training/ imports nothing from server/ but server.rlpa."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> Iterator[tuple[Path, str]]:
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module
                yield from ((path, f"{node.module}.{alias.name}") for alias in node.names)


def test_server_never_imports_torch_or_training() -> None:
    bad = [
        (str(path), name)
        for path, name in _imports("server")
        if name.split(".")[0] in {"torch", "training", "transformers", "trl", "peft"}
    ]
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


def test_importing_the_gateway_loads_no_torch() -> None:
    code = "import sys, server.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
