"""`rlpa users`: end users and their profiles from the command line.

It goes through the gateway's own ProfileService, database and cache (RLPA_* settings, as
`rlpa serve`), so an edit here is what a running gateway serves next when they share Redis.
Every change is audited with no key and {"via": "cli"}. Exit codes: 0 done, 1 no such tenant,
user or trait (or the database failed), 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from server.settings import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from server.profiles import schemas as s
    from server.profiles.service import ProfileService

Command = Callable[["ProfileService", int, argparse.Namespace], Awaitable[int]]


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}")
        return value

    return parse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tenant", help="tenant name (default: the gateway's default tenant)")
    common.add_argument("--json", action="store_true", help="print JSON for machines")
    users = sub.add_parser("users", help="end users and their profiles")
    commands = users.add_subparsers(dest="users_command", required=True)

    listing = commands.add_parser("list", parents=[common], help="list users, by id")
    listing.add_argument("--query", help="only ids containing this (case-insensitive)")
    listing.add_argument(
        "--limit", type=int_between(1, 1000), default=100, help="1 to 1000 (default 100)"
    )
    listing.add_argument("--cursor", help="the next page, as printed after the last one")
    for name, text in (
        ("show", "print the current profile"),
        ("history", "print every version, newest first"),
        ("export", "print everything kept about the user, as JSON"),
    ):
        commands.add_parser(name, parents=[common], help=text).add_argument("user")
    erase = commands.add_parser("erase", parents=[common], help="erase the user for good")
    erase.add_argument("user")
    erase.add_argument("--yes", action="store_true", help="required: there is no undo")
    replace = commands.add_parser("set", parents=[common], help="replace the whole profile")
    replace.add_argument("user")
    replace.add_argument("traits", nargs="*", metavar="TRAIT", help="none: an empty profile")
    for name, text in (("add-trait", "add one trait"), ("remove-trait", "remove one trait")):
        edit = commands.add_parser(name, parents=[common], help=text)
        edit.add_argument("user")
        edit.add_argument("trait")
    users.set_defaults(func=lambda args: asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from server import migrate
    from server.auth import service as auth_service
    from server.cache import create_cache
    from server.db import create_engine, create_sessionmaker
    from server.errors import BadRequestError, NotFoundError, RLPAError
    from server.profiles.service import ProfileService
    from server.pseudonyms import Pseudonyms

    user = getattr(args, "user", None)
    try:
        if user is not None:
            auth_service.validate_user(user)
    except BadRequestError as exc:
        return _fail(exc.message, 2)
    if args.users_command == "erase" and not args.yes:
        return _fail(f"erasing '{user}' cannot be undone: add --yes", 2)
    settings = Settings()
    engine = create_engine(settings)
    cache = create_cache(settings.redis_url, settings.redis_key_prefix, settings.cache_ttl_s)
    try:
        if settings.should_auto_migrate:  # as `rlpa serve` migrates the embedded SQLite
            await migrate.upgrade_engine(engine)
        sessionmaker = create_sessionmaker(engine)
        tenant_id = await _tenant_id(sessionmaker, args.tenant)
        if tenant_id is None:
            return _fail(f"no tenant '{args.tenant}'", 1)
        pseudonyms = Pseudonyms()
        await pseudonyms.load(sessionmaker, settings.pseudonym_key)
        profiles = ProfileService(sessionmaker, cache, pseudonyms)
        return await _COMMANDS[args.users_command](profiles, tenant_id, args)
    except NotFoundError as exc:
        return _fail(exc.message, 1)
    except BadRequestError as exc:
        return _fail(exc.message, 2)
    except (RLPAError, SQLAlchemyError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _fail(f"database error ({first}); is it migrated (`rlpa db upgrade`)?", 1)
    finally:
        await cache.aclose()
        await engine.dispose()


def _fail(message: str, code: int) -> int:
    print(f"rlpa users: {message}", file=sys.stderr)
    return code


async def _tenant_id(
    sessionmaker: async_sessionmaker[AsyncSession], name: str | None
) -> int | None:
    """The named tenant's id; the default tenant is created as the gateway creates it."""
    from server.auth import repository
    from server.auth.service import DEFAULT_TENANT
    from server.db import transaction

    async with transaction(sessionmaker) as session:
        if name is None or name == DEFAULT_TENANT:
            return (await repository.ensure_tenant(session, DEFAULT_TENANT)).id
        tenant = await repository.get_tenant_by_name(session, name)
    return None if tenant is None else tenant.id


def _print_json(model: BaseModel, indent: int | None = None) -> None:
    print(json.dumps(model.model_dump(mode="json"), ensure_ascii=False, indent=indent))


def _print_profile(profile: s.ProfileRead, args: argparse.Namespace) -> int:
    if args.json:
        _print_json(profile)
        return 0
    when = profile.updated_at.isoformat(timespec="seconds")
    print(f"user: {profile.user}\nversion: {profile.version} ({profile.source}, {when})")
    print("traits:" if profile.traits else "traits: (none)")
    for trait in profile.traits:
        print(f"  - {trait}")
    return 0


async def _list(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    page = await profiles.list_users(
        tenant_id, limit=args.limit, cursor=args.cursor, query=args.query
    )
    if args.json:
        _print_json(page)
        return 0
    rows = [("USER", "VERSION", "TRAITS", "PERSONALIZATION", "LAST SEEN")] + [
        (
            u.user,
            str(u.version),
            str(u.traits_count),
            "on" if u.personalization else "off",
            u.last_seen_at.isoformat(timespec="seconds"),
        )
        for u in page.data
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}", file=sys.stderr)
    return 0


async def _show(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    return _print_profile(await profiles.get_profile(tenant_id, args.user), args)


async def _history(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    history = await profiles.history(tenant_id, args.user)
    if args.json:
        _print_json(history)
        return 0
    for v in history.data:
        by = f" (key {v.actor_key_id})" if v.actor_key_id is not None else ""
        changes = [f"+{json.dumps(t, ensure_ascii=False)}" for t in v.added]
        changes += [f"-{json.dumps(t, ensure_ascii=False)}" for t in v.removed]
        when = v.created_at.isoformat(timespec="seconds")
        print(f"v{v.version}  {when}  {v.source}{by}  {' '.join(changes) or '(no change)'}")
    return 0


async def _export(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    from server.auth.service import DEFAULT_TENANT

    export = await profiles.export(tenant_id, args.tenant or DEFAULT_TENANT, args.user)
    _print_json(export, None if args.json else 2)
    return 0


async def _erase(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    from server.auth import audit

    revoked = await profiles.erase(tenant_id, args.user, audit.CLI)
    if args.json:
        print(json.dumps({"user": args.user, "erased": True, "keys_revoked": revoked}))
    else:
        print(f"erased user '{args.user}' ({revoked} bound key(s) revoked)")
    return 0


async def _set(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    from server.auth import audit

    return _print_profile(
        await profiles.replace(tenant_id, args.user, args.traits, audit.CLI), args
    )


async def _edit(profiles: ProfileService, tenant_id: int, args: argparse.Namespace) -> int:
    from server.auth import audit

    remove = args.users_command == "remove-trait"
    profile = await profiles.edit_trait(
        tenant_id, args.user, args.trait, remove=remove, actor=audit.CLI
    )
    return _print_profile(profile, args)


_COMMANDS: dict[str, Command] = {
    "list": _list,
    "show": _show,
    "history": _history,
    "export": _export,
    "erase": _erase,
    "set": _set,
    "add-trait": _edit,
    "remove-trait": _edit,
}
