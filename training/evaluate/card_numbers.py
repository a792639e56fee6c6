"""The model card's numbers and the per-user rows they come from: what of a transfer run
(transfer.json) the card keeps, and the card's metrics computed from that alone."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.evaluate import transfer
from training.evaluate.baselines import BASELINES

METRICS = (
    *transfer.HEADLINE[:3],
    *transfer.UPDATES,
    *transfer.HEADLINE[3:],
    *(name for name in transfer.CONVERSATION if name != "run_on_rate"),
    *transfer.LENIENT,
)
"""The card's metrics, in its order: one-to-one F1 first, the lenient keyword ones last."""
BASE_METRICS = ("response",)
"""What the bare base is read for: the judge's score of its replies to the same user turns."""


def _fields(metrics: Sequence[str]) -> tuple[str, ...]:
    """The UserMetrics fields `metrics` are computed from, in the dataclass's order."""
    needed = {f for m in metrics for f in transfer.POOLED.get(m, (m,))}
    return tuple(f.name for f in dataclasses.fields(transfer.UserMetrics) if f.name in needed)


FIELDS, BASE_FIELDS = _fields(METRICS), _fields(BASE_METRICS)
_BLANK: dict[str, Any] = {
    "precision": None,
    "recall": None,
    "f1": None,
    "retention": None,
    "contradictions": 0,
    "traits_final": 0,
    "turn1_recall": None,
}
"""UserMetrics' fields without a default, for rows stripped of them (the base's)."""


def sent(system: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling a run's system was sent (as agents.py sends it) by its SystemConfig."""
    if not system.get("do_sample", True):
        return {"temperature": 0.0, "max_new_tokens": system["max_new_tokens"]}
    return {key: system[key] for key in ("temperature", "top_p", "max_new_tokens")}


def _strip(users: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Each user's row, with only `fields`."""
    if lacking := sorted({f for u in users for f in fields if f not in u}):
        raise ValueError(f"no per-user {', '.join(lacking)}: a run older than the metrics")
    return [{"user": u["user"], **{f: u[f] for f in fields}} for u in users]


def read_runs(
    paths: Sequence[Path],
    eval_set: Mapping[str, str],
    sampling: Mapping[str, float],
    *,
    system: str,
    base: str,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(the per-user record of one set and setting, each system's metrics as its run reported
    them) from the runs' transfer.json files, which must have been made on `eval_set` (its
    `path` and `sha256`) and have sent every system but the notebooks `sampling`. `system`
    and the notebooks must be found, `base` may; a notebook may come from any run."""
    record: dict[str, Any] = {"transfer_set": None, "bootstrap": None, "runs": [], "sampling": {}}
    systems: dict[str, dict[str, Any]] = {}
    reported: dict[str, dict[str, Any]] = {}
    for path in paths:
        run = json.loads(path.read_text())
        if run["transfer_set"]["sha256"] != eval_set["sha256"]:
            raise ValueError(f"{path}: not a run on the committed {eval_set['path']}")
        if "config" not in run:
            raise ValueError(f"{path}: no config, so the sampling it used is unknown")
        bootstrap = {
            "resamples": run["config"]["bootstrap_resamples"],
            "seed": run["config"]["seed"],
        }
        if record["bootstrap"] not in (None, bootstrap):
            raise ValueError(f"{path}: another bootstrap than the other runs' ({bootstrap})")
        record["bootstrap"] = bootstrap
        record["transfer_set"] = {**run["transfer_set"], "path": eval_set["path"]}
        configs = {s["name"]: s for s in run["config"]["systems"]}
        taken = []
        for entry in run["systems"]:
            name, kind = entry["name"], entry["kind"]
            if name not in (system, base, *BASELINES):
                continue
            try:
                rows = _strip(entry["users"], BASE_FIELDS if name == base else FIELDS)
            except ValueError as error:
                raise ValueError(f"{path}: {name}: {error}; run it again") from None
            if name in systems:
                if kind in BASELINES and systems[name]["users"] == rows:
                    continue  # a notebook is the same in every run
                raise ValueError(f"{path}: {name} is in more than one run")
            if kind not in BASELINES:
                given = sent(configs[name])
                if any(given.get(key) != value for key, value in sampling.items()):
                    raise ValueError(f"{path}: {name} was sent {given}, not {dict(sampling)}")
                record["sampling"][name] = given
            systems[name] = {"kind": kind, "users": rows}
            reported[name] = entry["metrics"]
            taken.append(name)
        record["runs"].append({"created_at": run.get("created_at"), "systems": taken})
    if missing := [name for name in (system, *BASELINES) if name not in systems]:
        raise ValueError(f"no {', '.join(missing)} in {', '.join(map(str, paths))}")
    users = sorted(row["user"] for row in systems[system]["users"])
    for name, entry in systems.items():
        if sorted(row["user"] for row in entry["users"]) != users:
            raise ValueError(f"{name} was run on other users than {system}")
    record["systems"] = systems
    return record, reported


def _user(row: Mapping[str, Any]) -> transfer.UserMetrics:
    return transfer.UserMetrics(**{**_BLANK, **row})


def _dicts(found: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: None if found[name] is None else found[name].to_dict() for name in names}


def numbers(record: Mapping[str, Any], system: str, base: str) -> dict[str, Any]:
    """The card's numbers for one set and setting, from its per-user record alone."""
    options = {"resamples": record["bootstrap"]["resamples"], "seed": record["bootstrap"]["seed"]}
    users = {n: [_user(row) for row in s["users"]] for n, s in record["systems"].items()}
    ours = users[system]
    found: dict[str, Any] = {
        "metrics": {
            name: _dicts(transfer.summarise(users[name], **options), METRICS)
            for name in (system, *BASELINES)
        },
        "against": {
            notebook: _dicts(
                transfer.paired_differences(ours, users[notebook], metrics=METRICS, **options),
                METRICS,
            )
            for notebook in BASELINES
        },
    }
    if base not in users:
        found["base"] = {"not_measured": f"no {base!r} system (the bare base) in the runs"}
        return found
    theirs = users[base]
    found["base"] = {
        **_dicts(transfer.summarise(theirs, **options), BASE_METRICS),
        "difference": _dicts(
            transfer.paired_differences(ours, theirs, metrics=BASE_METRICS, **options),
            BASE_METRICS,
        ),
    }
    return found


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"metrics shipped f1": estimate, ...}: each estimate (or None, or a reason) by its path."""
    if not isinstance(tree, Mapping) or "mean" in tree:
        return {prefix.strip(): tree}
    return {k: v for key, value in tree.items() for k, v in _flat(value, f"{prefix} {key}").items()}


def _same(a: Any, b: Any) -> bool:
    if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return bool(a == b)
    return a["users"] == b["users"] and all(
        math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12) for k in ("mean", "low", "high")
    )


def differences(
    found: Mapping[str, Any], card: Mapping[str, Any], where: str, *, complete: bool = True
) -> list[str]:
    """Where `card`'s numbers differ from those `numbers` found, each named; `complete`: the
    card must also hold every number found."""
    groups = ("metrics", "against", "base")
    ours = _flat({group: found[group] for group in groups})
    theirs = _flat({group: card[group] for group in groups if group in card})
    wrong = [k for k, v in theirs.items() if k not in ours or not _same(ours[k], v)]
    missing = [k for k in ours if k not in theirs] if complete else []
    return [f"{where}: {k} does not reproduce" for k in wrong] + [
        f"{where}: {k} is missing" for k in missing
    ]


def per_user_json(record: Mapping[str, Any]) -> str:
    """`record` as JSON with each user's row on one line: small, and a diff shows the user."""
    head = json.dumps({**record, "systems": {}}, indent=2, ensure_ascii=False)
    blocks = []
    for name, entry in record["systems"].items():
        rows = ",\n".join(
            "        " + json.dumps(row, ensure_ascii=False) for row in entry["users"]
        )
        blocks.append(
            f'    {json.dumps(name)}: {{\n      "kind": {json.dumps(entry["kind"])},\n'
            f'      "users": [\n{rows}\n      ]\n    }}'
        )
    return head.replace('"systems": {}', '"systems": {\n' + ",\n".join(blocks) + "\n  }") + "\n"
