"""`rlpa usage`: requests and tokens from the usage rollup, as a table or JSON.

It reads the database the gateway writes (RLPA_* settings, as `rlpa serve`), across every tenant
unless `--tenant` names one, so it sees what every replica has flushed (within
RLPA_USAGE_FLUSH_S of now). Exit codes: 0 done, 1 no such tenant or a database error, 2 a usage
error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime

from server.settings import Settings
from server.users_cli import int_between

_COLUMNS = (
    ("hour", "HOUR"),
    ("day", "DAY"),
    ("tenant", "TENANT"),
    ("key_id", "KEY"),
    ("key_name", "KEY NAME"),
    ("user_hash", "USER (PSEUDONYM)"),
    ("model", "MODEL"),
)
_COUNTS = (
    ("requests", "REQUESTS"),
    ("prompt_tokens", "PROMPT"),
    ("completion_tokens", "COMPLETION"),
    ("total_tokens", "TOTAL"),
)


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            "an ISO date or time, e.g. 2026-12-01 or 2026-12-01T09:00Z"
        ) from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    usage = sub.add_parser(
        "usage",
        help="requests and tokens per key, tenant, end user and model",
        description="Requests and tokens of chat turns, summed per group from the hourly rollup.",
    )
    usage.add_argument("--tenant", help="only this tenant (default: every tenant)")
    usage.add_argument("--key", type=int, dest="key_id", help="only this key id")
    usage.add_argument("--user", help="only this end user (their `user` id)")
    usage.add_argument("--model", help="only this model")
    usage.add_argument("--since", type=_when, help="from the hour this falls in (UTC if no zone)")
    usage.add_argument("--until", type=_when, help="hours that start before this (UTC if no zone)")
    usage.add_argument(
        "--group-by",
        default="day",
        help="comma-separated: hour or day, tenant, key, user, model (default: day; "
        "'' for the total only)",
    )
    usage.add_argument(
        "--limit", type=int_between(1, 10_000), default=1000, help="groups, 1 to 10000"
    )
    usage.add_argument("--json", action="store_true", help="print the report as JSON")
    usage.set_defaults(func=lambda args: asyncio.run(_run(args)))


async def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from server.auth import repository as auth_repository
    from server.auth.service import validate_user
    from server.db import create_engine, create_sessionmaker, transaction
    from server.errors import BadRequestError, RLPAError
    from server.pseudonyms import Pseudonyms
    from server.usage import repository, service

    settings = Settings()
    engine = create_engine(settings)
    try:
        groups = service.parse_group_by(args.group_by)
        if args.user is not None:
            validate_user(args.user, param="--user")
        sessionmaker = create_sessionmaker(engine)
        tenant_id = None
        if args.tenant is not None:
            async with transaction(sessionmaker) as session:
                tenant = await auth_repository.get_tenant_by_name(session, args.tenant)
            if tenant is None:
                return _fail(f"no tenant '{args.tenant}'", 1)
            tenant_id = tenant.id
        user_hash = None
        if args.user is not None:
            pseudonyms = Pseudonyms()
            await pseudonyms.load(sessionmaker, settings.pseudonym_key)
            user_hash = pseudonyms.of(args.user)
        filters = repository.Filters(
            tenant_id=tenant_id,
            key_id=args.key_id,
            user_hash=user_hash,
            model=args.model,
            since=None if args.since is None else service.hour_of(args.since, "--since"),
            until=None if args.until is None else service.as_utc(args.until, "--until"),
        )
        query = service.UsageQuery(filters=filters, group_by=groups, limit=args.limit)
        report = await service.report(sessionmaker, query)
    except BadRequestError as exc:
        return _fail(exc.message, 2)
    except (RLPAError, SQLAlchemyError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _fail(f"database error ({first}); is it migrated (`rlpa db upgrade`)?", 1)
    finally:
        await engine.dispose()
    if args.json:
        print(json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        _print_table(report.model_dump(mode="json"))
    return 0


def _fail(message: str, code: int) -> int:
    print(f"rlpa usage: {message}", file=sys.stderr)
    return code


def _print_table(report: dict[str, object]) -> None:
    rows = report["data"]
    assert isinstance(rows, list)
    groups = report["group_by"]
    assert isinstance(groups, list)
    wanted = {"key": ("key_id", "key_name"), "user": ("user_hash",)}
    shown = [
        (field, title)
        for field, title in _COLUMNS
        if field in groups or any(field in wanted.get(group, ()) for group in groups)
    ]
    columns = [*shown, *_COUNTS]
    total = report["total"]
    assert isinstance(total, dict)
    table = [[title for _, title in columns]]
    if shown:  # with no groups the one row is the total
        table += [[_cell(row.get(field)) for field, _ in columns] for row in rows]
        table.append(["total", *[""] * (len(shown) - 1)])
    else:
        table.append([])
    table[-1] += [_cell(total[field]) for field, _ in _COUNTS]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        cells = [
            cell.rjust(width) if i >= len(shown) else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    if report["has_more"]:
        print("more groups than --limit: narrow the filters", file=sys.stderr)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and value.endswith(":00:00Z"):  # an hour
        return value[:-4].replace("T", " ")
    return str(value)
