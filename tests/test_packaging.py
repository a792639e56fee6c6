"""A non-editable install (`pip install .`, the image) carries the shipped model directory and
serves the adapted default from its own copy, not from a checkout.

The wheel is built from a copy of the sources, so that no build/ left in the checkout by an earlier
build (setuptools never prunes it) can put stale files in it; it is installed, without its
dependencies, into a bare virtualenv that borrows this one's site-packages through a .pth line (a
path added so has its own .pth files ignored: this checkout's editable install stays out).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from server.backends import DEFAULT_ADAPTED_MODEL_NAME, SHIPPED_ADAPTER

pytestmark = pytest.mark.slow  # builds and installs a wheel in subprocesses

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / DEFAULT_ADAPTED_MODEL_NAME
SOURCES = ("pyproject.toml", "README.md", "server", "training", "migrations", "models")


def _shipped_files() -> set[str]:
    """What the package-data patterns in pyproject.toml promise to ship, as wheel names."""
    found = [p for p in SHIPPED.iterdir() if p.suffix in {".gguf", ".json", ".md"}]
    hf = SHIPPED / "hf-adapter"
    if hf.is_dir():
        found += [p for p in hf.iterdir() if p.suffix in {".json", ".safetensors"}]
    return {p.relative_to(ROOT).as_posix() for p in found}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", str(src), "-w", str(out)]
    subprocess.run(build, check=True, capture_output=True, timeout=120)
    (found,) = out.glob("rlpa-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed; returns its python."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "_borrowed_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", str(python)]
    install = [*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=120)
    return python


def test_the_wheel_holds_the_shipped_model_directory(wheel: Path) -> None:
    expected = _shipped_files()
    assert {f"models/{DEFAULT_ADAPTED_MODEL_NAME}/{n}" for n in ("adapter.gguf", "rlpa.json")} <= (
        expected
    )
    with zipfile.ZipFile(wheel) as archive:
        models = {n for n in archive.namelist() if n.startswith("models/")}
        adapter = archive.getinfo(f"models/{DEFAULT_ADAPTED_MODEL_NAME}/adapter.gguf")
    assert models == expected
    assert adapter.file_size == SHIPPED_ADAPTER.stat().st_size


def test_the_wheel_declares_its_license_as_spdx(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    license = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert f"\nLicense-Expression: {license}\n" in metadata


def test_an_installed_wheel_serves_its_own_copy_of_the_adapter(
    installed: Path, tmp_path: Path
) -> None:
    code = """if True:
        import json, server
        from server import backends
        from server.settings import Settings
        settings = Settings(_env_file=None)
        print(json.dumps({
            "server": server.__file__,
            "shipped": str(backends.SHIPPED_ADAPTER),
            "exists": backends.SHIPPED_ADAPTER.is_file(),
            "adapter": backends.embedded_adapter(settings),
            "model": backends.served_model_name(settings),
            "contract": backends.contract_version(settings),
        }))
    """
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no RLPA_*, no PYTHONPATH
    run = subprocess.run(
        [installed, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    venv = installed.parents[1]
    assert Path(seen["server"]).is_relative_to(venv)
    assert Path(seen["shipped"]).is_relative_to(venv) and seen["exists"]
    assert seen["adapter"] == seen["shipped"]
    assert seen["model"] == DEFAULT_ADAPTED_MODEL_NAME
    card = json.loads((SHIPPED / "rlpa.json").read_text())
    assert seen["contract"] == card.get("contract_version", 1)


def test_the_installed_command_prints_its_version(installed: Path) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    run = subprocess.run(
        [installed.with_name("rlpa"), "--version"], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == f"rlpa {version}"
