"""`rlpa` command line: serve, db, keys, users (training commands join under `rlpa train`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import signal
import sys
from collections.abc import Sequence

from server import users_cli
from server.settings import Settings
from server.usage import cli as usage_cli


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server import observability
    from server.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    observability.configure_logging(settings)
    app = create_app(settings)
    # On SIGTERM uvicorn stops accepting, waits up to the grace period for responses in flight,
    # then re-raises the signal (uvicorn#1600, 0.29), which would end the process as killed by it
    # (exit 143). A drained shutdown is a clean exit: 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # configured above
        access_log=False,  # the gateway logs each request itself, with more to say
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return 0


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _db(args: argparse.Namespace) -> int:
    from server import migrate

    url = Settings().database_url
    if args.db_command == "upgrade":
        migrate.upgrade(url, args.revision)
    else:
        migrate.downgrade(url, args.revision)
    print(f"database {args.db_command}d to {args.revision}")
    return 0


async def _keys_async(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.auth import audit, repository, service
    from server.auth import schemas as s
    from server.db import create_engine, create_sessionmaker, transaction
    from server.errors import BadRequestError, NotFoundError

    engine = create_engine(Settings())
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            if args.keys_command == "create":
                tenant = await repository.ensure_tenant(session, args.tenant)
                scopes = [x.strip() for x in args.scopes.split(",") if x.strip()]
                try:
                    body = s.KeyCreate(
                        name=args.name, scopes=scopes, user=args.user, **_limits(args)
                    )
                    created = await service.create_key(session, tenant, body, actor=audit.CLI)
                except (ValidationError, BadRequestError) as exc:
                    if isinstance(exc, BadRequestError):
                        message = exc.message
                    else:
                        message = "; ".join(str(e["msg"]) for e in exc.errors())
                    print(f"rlpa keys create: {message}", file=sys.stderr)
                    return 2
                print(json.dumps(created.model_dump(mode="json"), indent=2))
                print("Store the key now: it is not shown again.", file=sys.stderr)
            elif args.keys_command == "list":
                tenant_id = None
                if args.tenant:
                    tenant_id = (await repository.ensure_tenant(session, args.tenant)).id
                for key in await repository.list_keys(session, tenant_id):
                    owner = await repository.get_tenant(session, key.tenant_id)
                    row = service.key_read(key, owner.name if owner else "?")
                    print(json.dumps(row.model_dump(mode="json")))
            elif args.keys_command == "update":
                try:
                    changes = _limits(args) | ({} if args.name is None else {"name": args.name})
                    update = s.KeyUpdate(**changes)
                    key = await service.update_key(session, args.key_id, None, update, audit.CLI)
                except (ValidationError, BadRequestError, NotFoundError) as exc:
                    print(f"rlpa keys update: {_message(exc)}", file=sys.stderr)
                    return 1 if isinstance(exc, NotFoundError) else 2
                owner = await repository.get_tenant(session, key.tenant_id)
                row = service.key_read(key, owner.name if owner else "?")
                print(json.dumps(row.model_dump(mode="json"), indent=2))
            else:
                found = await repository.get_key(session, args.key_id)
                if found is None or not await repository.revoke_key(session, args.key_id, None):
                    print(f"no active key {args.key_id}", file=sys.stderr)
                    return 1
                await audit.record(session, found.tenant_id, audit.CLI, "key.revoke", str(found.id))
                print(f"revoked key {args.key_id}")
    finally:
        await engine.dispose()
    return 0


def _message(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(getattr(exc, "message", exc))


def _limits(args: argparse.Namespace) -> dict[str, object]:
    """--expires, --rpm and --tpm as given (`never` / `default`: null, which clears them)."""
    given = {"expires_at": args.expires, "rpm_limit": args.rpm, "tpm_limit": args.tpm}
    return {name: value for name, value in given.items() if value is not _UNSET}


_UNSET = object()


def _expiry(text: str) -> object:
    """An ISO date or time (UTC when it names no zone), or `never`."""
    from datetime import UTC, datetime

    if text == "never":
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            "an ISO date or time (2027-01-31, 2027-01-31T18:00+01:00) or 'never'"
        ) from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _per_minute(text: str) -> int | None:
    """A count (0: no limit), or `default`: the gateway's setting."""
    if text == "default":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError("a whole number (0: no limit) or 'default'")
    return int(text)


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--expires", type=_expiry, default=_UNSET, help="ISO date or time (UTC), or never"
    )
    parser.add_argument(
        "--rpm",
        type=_per_minute,
        default=_UNSET,
        help="requests per minute (0: none; default: RLPA_RATE_LIMIT_PER_MINUTE)",
    )
    parser.add_argument(
        "--tpm",
        type=_per_minute,
        default=_UNSET,
        help="tokens per minute (0: none; default: RLPA_RATE_LIMIT_TOKENS_PER_MINUTE)",
    )


# The settings `rlpa serve --help` lists, with what they mean; each one's environment name and
# default come from the Settings field itself, so the help cannot drift from the code.
SERVE_SETTINGS = {
    "host": "where to listen (--host wins); off loopback a key is required",
    "port": "where to listen (--port wins)",
    "backend": "llamacpp (the embedded model) or openai (OpenAI-compatible upstreams)",
    "model": "GGUF path (llamacpp; unset: SmolLM2-135M-Instruct) or upstream model id",
    "adapter": "LoRA GGUF for the embedded model (unset: the shipped RLPA one; none: no adapter)",
    "database_url": "SQLite (migrated at start) or postgresql+asyncpg://",
    "redis_url": "profile and key cache (unset: in-process)",
    "admin_api_key": "bootstrap admin key (unset on loopback: authentication off)",
    "upstream_urls": "comma-separated base URLs of the upstreams (backend openai)",
}


def _version() -> str:
    try:
        return importlib.metadata.version("rlpa")
    except importlib.metadata.PackageNotFoundError:  # a checkout run without `pip install`
        return "unknown (not installed)"


def _settings_help() -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    lines = ["settings (environment variables, or a .env file in the working directory):"]
    for name, meaning in SERVE_SETTINGS.items():
        default = Settings.model_fields[name].get_default(call_default_factory=True)
        shown = "unset" if default is None or default == [] else str(default)
        lines += [f"  {prefix}{name.upper()} (default: {shown})", f"      {meaning}"]
    lines.append(f"Every other field of server/settings.py is {prefix}<NAME> too (README).")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlpa",
        description=__doc__,
        epilog="Training: rlpa train sft|rl, rlpa eval, rlpa export (extra `train`; see --help).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the gateway (settings from RLPA_* / .env)",
        description="Run the gateway.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="overrides RLPA_HOST")
    serve.add_argument("--port", type=int, help="overrides RLPA_PORT")
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations to a revision (e.g. base)")
    down.add_argument("revision")
    db.set_defaults(func=_db)

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--tenant", default="default")
    create.add_argument(
        "--scopes", default="chat", help="comma-separated: chat, admin, profile (needs --user)"
    )
    create.add_argument("--user", help="bind the key to one end user")
    create.add_argument("--name", default="")
    _add_limit_options(create)
    listing = keys_sub.add_parser("list", help="list keys (prefixes only)")
    listing.add_argument("--tenant")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=int)
    update = keys_sub.add_parser("update", help="change a key's name, expiry or limits")
    update.add_argument("key_id", type=int)
    update.add_argument("--name")
    _add_limit_options(update)
    keys.set_defaults(func=lambda a: asyncio.run(_keys_async(a)))
    users_cli.register(sub)
    usage_cli.register(sub)
    return parser


# Offline training commands live in the `training` package (extra `train`). The gateway never
# imports it; the command line hands these words over to it at run time.
TRAINING_COMMANDS = ("train", "eval", "export")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TRAINING_COMMANDS:
        try:
            training_cli = importlib.import_module("training.cli")
        except ImportError as exc:
            print(
                f"`rlpa {argv[0]}` needs the training extra: pip install -e '.[train]' ({exc})",
                file=sys.stderr,
            )
            return 2
        code: int = training_cli.main(argv)
        return code
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
