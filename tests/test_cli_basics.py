"""`rlpa --version` and `rlpa serve --help`, through `server.cli.main` as the `rlpa` script runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from server import cli

ROOT = Path(__file__).resolve().parents[1]


def _run(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main(list(words))
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_version_prints_the_projects_version(capsys: pytest.CaptureFixture[str]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert _run(capsys, "--version").strip() == f"rlpa {version}"


def test_serve_help_lists_the_main_settings_with_env_names_and_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _run(capsys, "serve", "--help")
    for line in (
        "RLPA_HOST (default: 127.0.0.1)",
        "RLPA_PORT (default: 8000)",
        "RLPA_BACKEND (default: llamacpp)",
        "RLPA_MODEL (default: unset)",
        "RLPA_ADAPTER (default: unset)",
        "RLPA_DATABASE_URL (default: sqlite+aiosqlite:///./rlpa.db)",
        "RLPA_REDIS_URL (default: unset)",
        "RLPA_ADMIN_API_KEY (default: unset)",
        "RLPA_UPSTREAM_URLS (default: unset)",
    ):
        assert line in out
    assert "--host" in out and "--port" in out


def test_serve_help_shows_defaults_not_this_environments_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RLPA_PORT", "9999")
    monkeypatch.setenv("RLPA_ADMIN_API_KEY", "a-secret-that-help-must-not-print")
    out = _run(capsys, "serve", "--help")
    assert "RLPA_PORT (default: 8000)" in out
    assert "a-secret-that-help-must-not-print" not in out
