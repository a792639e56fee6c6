"""Does a reply respect a stored preference? The conflict set against running gateways.

    python -m training.evaluate.conflicts --gateway shipped=http://127.0.0.1:8112 \
        --model smollm2-135m-rlpa --output-dir runs/conflicts

Per user and gateway, twice, in a new conversation with the same user id (so nothing but the
profile differs): *off*, the user erased, so the prompt holds no stored profile; then *on*, the
user erased and `stored` written as the whole profile through the admin API (PUT
/admin/users/{user}/profile), which leaves out whether the model would have written it: only
the reply's use of the profile is measured. Then the user is erased again. "Off" is not the
gateway's opt-out (PATCH personalization=false): an opted-out user gets plain chat, without the
RLPA system prompt or output format, so two things would change at once.

A reply respects the preference when it holds none of the user's `violates_any` groups
(training/eval_data/conflicts.py: keywords with a negation guard). Per gateway and decoding:
the share of users respected with the profile on and off, and the paired difference on - off
with a paired bootstrap 95% interval (the same users drawn for both); beside it, the share of
replies that acknowledge the preference (`respects_any`, for users that have it) and the share
that answer at all (the eval judge's `answers`), since an empty reply violates nothing.

A vague reply ("Noted, you like Thai food. What music do you like?") violates nothing too, so
for users with `answers_any` (every user of conflicts_dev_v2) the reply is also read for what
it names: *concrete* when it holds an `answers_any` group, *served* when it is concrete and
respected. Served gets the same on, off and paired on - off; v1 users have no `answers_any`, so
served is n/a on v1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.eval_data.conflicts import CONFLICTS_DEV_V1, ConflictUser, load_conflict_set
from training.evaluate.agents import GatewayAgent, Sampling
from training.evaluate.intervals import RESAMPLES, bootstrap, paired_bootstrap

logger = logging.getLogger(__name__)

FILES = {"json": "conflicts.json", "markdown": "conflicts.md"}
USER_PREFIX = "rlpa-conflicts-"
DECODINGS = ("greedy", "default")
"""greedy: temperature 0; default: no temperature or top-p sent, the gateway's own (seeded)."""
OFF = "same user id, erased: the RLPA prompt with no stored profile"
SHARES = ("respected", "acknowledged", "answered", "concrete", "served")
PAIRED = ("respected", "served")
"""The shares read as a paired difference on - off."""


@dataclass(frozen=True)
class Gateway:
    name: str
    base_url: str  # the root URL or an OpenAI base URL (…/v1)


@dataclass(frozen=True)
class Verdict:
    reply: str
    violated: list[list[str]]
    respected: bool
    acknowledged: bool | None
    """None for a user without `respects_any`."""
    answered: bool
    concrete: bool | None = None
    """Names an answer (`answers_any`); None for a user without it, and in reports written
    before the field existed."""
    served: bool | None = None
    """Concrete and respected; None where `concrete` is."""


def verdict(user: ConflictUser, reply: str) -> Verdict:
    from training.evaluate.judge import answers

    violated = user.violations(reply)
    return Verdict(
        reply=reply,
        violated=violated,
        respected=not violated,
        acknowledged=user.acknowledged(reply) if user.respects_any else None,
        answered=answers(reply, user.request),
        concrete=user.answers(reply),
        served=user.serves(reply),
    )


def ask(agent: GatewayAgent, user: ConflictUser, user_id: str, *, personalized: bool) -> str:
    """The reply to the user's request as a new conversation, with `stored` as the whole
    profile (personalized) or no profile at all."""
    agent.reset(user_id)
    if personalized:
        agent.set_profile(user_id, user.stored)
    reply, _ = agent.turn(user_id, [{"role": "user", "content": user.request}])
    return reply


def share(verdicts: Sequence[Verdict], name: str, resamples: int, seed: int) -> Any:
    values = [getattr(v, name) for v in verdicts if getattr(v, name) is not None]
    estimate = bootstrap([float(x) for x in values], resamples=resamples, seed=seed)
    return None if estimate is None else estimate.to_dict()


def difference(
    on: Sequence[Verdict], off: Sequence[Verdict], name: str, resamples: int, seed: int
) -> Any:
    """on - off in one share, paired over the users it applies to; None for none."""
    pairs = [
        (getattr(a, name), getattr(b, name))
        for a, b in zip(on, off, strict=True)
        if getattr(a, name) is not None and getattr(b, name) is not None
    ]
    estimate = paired_bootstrap(
        [(float(a), 1.0) for a, _ in pairs],
        [(float(b), 1.0) for _, b in pairs],
        resamples=resamples,
        seed=seed,
    )
    return None if estimate is None else estimate.to_dict()


def summarise(
    on: Sequence[Verdict], off: Sequence[Verdict], resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Each share with the profile on and off, and the paired differences in respected and
    served, with the users each side alone gets right (`only_on`, `only_off` for respected)."""
    pairs = list(zip(on, off, strict=True))
    summary: dict[str, Any] = {
        f"{name}_{side}": share(verdicts, name, resamples, seed)
        for name in SHARES
        for side, verdicts in (("on", on), ("off", off))
    }
    for name in PAIRED:
        summary[f"{name}_difference"] = difference(on, off, name, resamples, seed)
    summary["only_on"] = sum(a.respected and not b.respected for a, b in pairs)
    summary["only_off"] = sum(b.respected and not a.respected for a, b in pairs)
    summary["served_only_on"] = sum(bool(a.served) and b.served is False for a, b in pairs)
    summary["served_only_off"] = sum(bool(b.served) and a.served is False for a, b in pairs)
    return summary


def run_gateway(
    agent: GatewayAgent, users: Sequence[ConflictUser], prefix: str = USER_PREFIX
) -> list[dict[str, Any]]:
    """Every user's request off, then on; the user erased afterwards."""
    rows = []
    for index, user in enumerate(users, 1):
        user_id = prefix + user.id
        off = verdict(user, ask(agent, user, user_id, personalized=False))
        on = verdict(user, ask(agent, user, user_id, personalized=True))
        agent.reset(user_id)
        rows.append({"id": user.id, "stored": list(user.stored), "request": user.request,
                     "on": asdict(on), "off": asdict(off)})  # fmt: skip
        logger.info(
            "%s: conflict user %d/%d %s: on %s, off %s",
            agent.name, index, len(users), user.id, _outcome(on), _outcome(off),
        )  # fmt: skip
    return rows


def _outcome(verdict: Verdict) -> str:
    if not verdict.respected:
        return f"violated {verdict.violated}"
    return "respected, no answer" if verdict.concrete is False else "respected"


def _verdicts(rows: Sequence[dict[str, Any]], side: str) -> list[Verdict]:
    return [Verdict(**row[side]) for row in rows]


def _params(decoding: str, max_tokens: int, seed: int) -> dict[str, Any]:
    if decoding == "greedy":
        return {"max_tokens": max_tokens, "temperature": 0.0}
    return {"max_tokens": max_tokens, "seed": seed}


def run_conflicts(
    gateways: Sequence[Gateway],
    *,
    model: str,
    output_dir: str | Path,
    path: str | Path = CONFLICTS_DEV_V1,
    api_key: str | None = None,
    admin_key: str | None = None,
    decodings: Sequence[str] = ("greedy",),
    max_tokens: int = 256,
    users: int | None = None,
    seed: int = 0,
    resamples: int = RESAMPLES,
    title: str = "Conflict set",
) -> dict[str, Any]:
    """Every gateway on the conflict set; writes conflicts.json and conflicts.md."""
    from training.evaluate import conflicts_report

    if unknown := sorted(set(decodings) - set(DECODINGS)):
        raise ValueError(f"unknown decoding(s) {unknown}: choose from {DECODINGS}")
    path = Path(path)
    chosen = load_conflict_set(path)[:users]
    systems = []
    for gateway in gateways:
        entry: dict[str, Any] = {"name": gateway.name, "base_url": gateway.base_url}
        for decoding in decodings:
            agent = GatewayAgent(
                gateway.name, gateway.base_url, model, api_key,
                admin_api_key=admin_key, sampling=Sampling(max_new_tokens=max_tokens),
            )  # fmt: skip
            # The request's sampling fields, whole: "default" must leave temperature unsent.
            agent.params = _params(decoding, max_tokens, seed)
            try:
                rows = run_gateway(agent, chosen)
            finally:
                agent.close()
            on, off = _verdicts(rows, "on"), _verdicts(rows, "off")
            entry[decoding] = {"summary": summarise(on, off, resamples, seed), "users": rows}
        systems.append(entry)
    results = {
        "title": title,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "conflict_set": {
            "path": str(path),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "users": len(chosen),
        },
        "config": {
            "model": model,
            "decodings": list(decodings),
            "max_tokens": max_tokens,
            "seed": seed,
            "bootstrap_resamples": resamples,
            "personalization_off": OFF,
        },
        "systems": systems,
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {kind: out / name for kind, name in FILES.items()}
    files["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    files["markdown"].write_text(conflicts_report.markdown(results))
    return {**results, "files": {kind: str(p) for kind, p in files.items()}}


def _gateway(spec: str) -> Gateway:
    name, sep, url = spec.partition("=")
    if not sep or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=URL, got {spec!r}")
    return Gateway(name, url)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate.conflicts", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--conflicts", default=str(CONFLICTS_DEV_V1), metavar="JSONL", help="the conflict set "
        "(default: v1, which has no answers_any, so served is n/a there; "
        "training/eval_data/conflicts_dev_v2.jsonl has them)")  # fmt: skip
    add("--gateway", action="append", type=_gateway, required=True, metavar="NAME=URL",
        help="a running gateway's root URL (repeatable)")  # fmt: skip
    add("--model", default="rlpa", help="model name sent to the gateways (default: rlpa)")
    add("--api-key", help="gateway key with the chat scope (default: $RLPA_EVAL_API_KEY)")
    add("--admin-key", help="key with the admin scope (default: the --api-key)")
    add("--decoding", action="append", choices=DECODINGS, help="greedy (default) and/or "
        "default: the gateway's own sampling, seeded (repeatable)")  # fmt: skip
    add("--max-tokens", type=int, default=256)
    add("--users", type=int, help="the first N users (default: all)")
    add("--seed", type=int, default=0)
    add("--output-dir", default="runs/conflicts")
    add("--title", default="Conflict set")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from training.evaluate import conflicts_report

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    api_key = args.api_key or os.environ.get("RLPA_EVAL_API_KEY")
    results = run_conflicts(
        args.gateway,
        model=args.model,
        output_dir=args.output_dir,
        path=args.conflicts,
        api_key=api_key,
        admin_key=args.admin_key or api_key,
        decodings=args.decoding or ["greedy"],
        max_tokens=args.max_tokens,
        users=args.users,
        seed=args.seed,
        title=args.title,
    )
    print(conflicts_report.markdown(results))
    for kind, file in results["files"].items():
        print(f"{kind}: {file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
