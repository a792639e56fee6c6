"""`rlpa users`, run through `server.cli.main` against a SQLite file named in the environment, as
an operator runs it; and against the PostgreSQL + Redis of a running gateway.

The CLI runs in a worker thread: it starts its own event loop, as the `rlpa` command does.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from server import cli
from server.app import create_app
from server.settings import Settings
from tests.fixtures.app import auth, running
from tests.fixtures.db import REDIS_URL


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def rlpa(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., Any]:
    """`rlpa` with the given words on a fresh SQLite database; returns a Result."""
    monkeypatch.setenv("RLPA_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.delenv("RLPA_REDIS_URL", raising=False)
    monkeypatch.delenv("RLPA_AUTO_MIGRATE", raising=False)

    async def run(*words: str) -> Result:
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, list(words))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


async def test_set_show_and_history_print_what_is_stored(rlpa: Callable[..., Any]) -> None:
    assert (await rlpa("users", "set", "bob", "likes tea", "vegan")).code == 0
    assert (await rlpa("users", "set", "bob", "vegan", "cycles to work")).code == 0
    shown = await rlpa("users", "show", "bob")
    assert shown.code == 0
    assert "version: 2" in shown.out
    assert [line.strip() for line in shown.out.splitlines() if line.startswith("  - ")] == [
        "- vegan",
        "- cycles to work",
    ]
    as_json = (await rlpa("users", "show", "bob", "--json")).json()
    assert (as_json["version"], as_json["traits"]) == (2, ["vegan", "cycles to work"])
    history = await rlpa("users", "history", "bob")
    assert history.out.splitlines()[0].startswith("v2")
    assert '+"cycles to work"' in history.out and '-"likes tea"' in history.out
    versions = (await rlpa("users", "history", "bob", "--json")).json()["data"]
    assert [(v["version"], v["source"], v["actor_key_id"]) for v in versions] == [
        (2, "admin", None),
        (1, "admin", None),
    ]


async def test_add_and_remove_trait_change_one_trait(rlpa: Callable[..., Any]) -> None:
    await rlpa("users", "set", "ann", "likes tea")
    added = await rlpa("users", "add-trait", "ann", "plays chess", "--json")
    assert (added.code, added.json()["version"], added.json()["traits"]) == (
        0,
        2,
        ["likes tea", "plays chess"],
    )
    again = await rlpa("users", "add-trait", "ann", "  PLAYS chess", "--json")
    assert (again.code, again.json()["version"]) == (0, 2)  # already there: no new version
    removed = await rlpa("users", "remove-trait", "ann", "Likes Tea", "--json")
    assert (removed.code, removed.json()["traits"]) == (0, ["plays chess"])


async def test_list_prints_a_table_or_json_pages(rlpa: Callable[..., Any]) -> None:
    for user in ("carol", "dave", "erin"):
        await rlpa("users", "set", user, "t1", "t2")
    table = (await rlpa("users", "list")).out.splitlines()
    assert table[0].split() == ["USER", "VERSION", "TRAITS", "PERSONALIZATION", "LAST", "SEEN"]
    assert [line.split()[:4] for line in table[1:]] == [
        [user, "1", "2", "on"] for user in ("carol", "dave", "erin")
    ]
    first = await rlpa("users", "list", "--limit", "2", "--json")
    assert [u["user"] for u in first.json()["data"]] == ["carol", "dave"]
    rest = await rlpa("users", "list", "--cursor", first.json()["next_cursor"], "--json")
    assert [u["user"] for u in rest.json()["data"]] == ["erin"]
    assert [
        u["user"] for u in (await rlpa("users", "list", "--query", "AV", "--json")).json()["data"]
    ] == ["dave"]


async def test_export_prints_every_version_as_json(rlpa: Callable[..., Any]) -> None:
    await rlpa("users", "set", "fay", "a")
    await rlpa("users", "add-trait", "fay", "b")
    for extra in ((), ("--json",)):
        export = (await rlpa("users", "export", "fay", *extra)).json()
        assert (export["user"], export["tenant"]) == ("fay", "default")
        assert [v["traits"] for v in export["versions"]] == [["a"], ["a", "b"]]


async def test_unknown_users_and_traits_are_one_line_errors_with_exit_1(
    rlpa: Callable[..., Any],
) -> None:
    await rlpa("users", "set", "gus", "kept")
    for words in (
        ("show", "nobody"),
        ("history", "nobody"),
        ("export", "nobody"),
        ("erase", "nobody", "--yes"),
        ("remove-trait", "nobody", "kept"),
        ("remove-trait", "gus", "absent"),
    ):
        result = await rlpa("users", *words)
        assert result.code == 1, words
        assert result.out == ""
        errors = [line for line in result.err.splitlines() if not line.startswith("note:")]
        assert len(errors) == 1 and errors[0].startswith("rlpa users: "), result.err
    assert "absent" in result.err
    assert (await rlpa("users", "show", "gus", "--json")).json()["traits"] == ["kept"]


async def test_erase_needs_yes_then_leaves_nothing(rlpa: Callable[..., Any]) -> None:
    await rlpa("users", "set", "hal", "secret")
    refused = await rlpa("users", "erase", "hal")
    assert refused.code == 2 and "--yes" in refused.err
    assert (await rlpa("users", "show", "hal")).code == 0
    erased = await rlpa("users", "erase", "hal", "--yes", "--json")
    assert (erased.code, erased.json()) == (0, {"user": "hal", "erased": True, "keys_revoked": 0})
    assert (await rlpa("users", "show", "hal")).code == 1
    assert "hal" not in (await rlpa("users", "list")).out


async def test_usage_errors_exit_2_and_change_nothing(rlpa: Callable[..., Any]) -> None:
    await rlpa("users", "set", "ivy", "kept")
    for words in (
        ("add-trait", "ivy", "x" * 201),
        ("add-trait", "ivy", "bell\x07"),
        ("set", "ivy", "a", "</profile>"),
        ("show", "   "),
        ("show", "x" * 257),
    ):
        result = await rlpa("users", *words)
        assert result.code == 2, words
        assert result.err.startswith("rlpa users: ")
    for words in (("users",), ("users", "show"), ("users", "list", "--limit", "0")):
        with pytest.raises(SystemExit) as exc:
            await rlpa(*words)
        assert exc.value.code == 2, words
    shown = (await rlpa("users", "show", "ivy", "--json")).json()
    assert (shown["version"], shown["traits"]) == (1, ["kept"])


async def test_tenant_option_picks_the_tenant(rlpa: Callable[..., Any]) -> None:
    assert (await rlpa("db", "upgrade")).code == 0
    assert (await rlpa("keys", "create", "--tenant", "acme")).code == 0
    await rlpa("users", "set", "--tenant", "acme", "jo", "in acme")
    await rlpa("users", "set", "jo", "in default")
    acme = (await rlpa("users", "show", "jo", "--tenant", "acme", "--json")).json()
    default = (await rlpa("users", "show", "jo", "--json")).json()
    assert (acme["traits"], default["traits"]) == (["in acme"], ["in default"])
    unknown = await rlpa("users", "list", "--tenant", "nope")
    assert unknown.code == 1 and "no tenant 'nope'" in unknown.err


async def test_cli_changes_are_audited_and_seen_by_the_gateway_on_the_same_database(
    rlpa: Callable[..., Any], tmp_path: Path
) -> None:
    await rlpa("users", "set", "kim", "a")
    await rlpa("users", "add-trait", "kim", "b")
    await rlpa("users", "remove-trait", "kim", "a")
    await rlpa("users", "erase", "lee", "--yes")  # unknown: fails, logs nothing
    await rlpa("users", "set", "lee", "x")
    await rlpa("users", "erase", "lee", "--yes")
    # The gateway with authentication off works in its default tenant: the CLI's default.
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db")  # type: ignore[call-arg]
    async with running(create_app(settings)) as client:
        profile = (await client.get("/admin/users/kim/profile")).json()
        events = (await client.get("/admin/audit")).json()["data"]
    assert (profile["version"], profile["traits"]) == (3, ["b"])
    assert [(e["action"], e["actor_key_id"], e["detail"]["via"]) for e in events] == [
        ("user.erase", None, "cli"),
        ("profile.replace", None, "cli"),
        ("profile.remove_trait", None, "cli"),
        ("profile.add_trait", None, "cli"),
        ("profile.replace", None, "cli"),
    ]
    assert "lee" not in json.dumps(events)


async def test_a_cli_edit_is_what_a_running_gateway_serves_next(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_settings: Callable[..., Settings],
    pg_url: str,
    redis_prefix: str,
) -> None:
    """Sharing PostgreSQL and Redis with the gateway, the CLI's writes replace (and its erasures
    tombstone) the profile the gateway has cached."""
    for name, value in (
        ("RLPA_DATABASE_URL", pg_url),
        ("RLPA_REDIS_URL", REDIS_URL),
        ("RLPA_REDIS_KEY_PREFIX", redis_prefix),
    ):
        monkeypatch.setenv(name, value)
    user = f"shared-{uuid.uuid4().hex[:8]}"
    path = f"/admin/users/{quote(user, safe='')}/profile"
    async with running(create_app(make_settings(db="postgres", redis=True))) as client:
        client.headers.update(auth())
        await client.put(path, json={"traits": ["from the api"]})
        assert (await client.get(path)).json()["version"] == 1  # cached now
        code = await asyncio.to_thread(cli.main, ["users", "add-trait", user, "from the cli"])
        assert code == 0
        assert (await client.get(path)).json()["traits"] == ["from the api", "from the cli"]
        code = await asyncio.to_thread(cli.main, ["users", "erase", user, "--yes"])
        assert code == 0 and "note:" not in capsys.readouterr().err
        assert (await client.get(path)).status_code == 404
