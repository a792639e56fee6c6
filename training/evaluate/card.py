"""The model card, `models/<name>/README.md` and `eval.json`, built in one call from transfer runs
(the transfer.json files `rlpa eval --transfer` writes) and checked against the repository.

    python -m training.evaluate.card models/smollm2-135m-rlpa \\
        --run dev_v1:greedy=runs/card/dev_v1-greedy/transfer.json \\
        --run dev_v1:served=runs/card/dev_v1-served/transfer.json,runs/card/base/transfer.json \\
        --not-measured transfer_v2:greedy="not read for this model" ...
    python -m training.evaluate.card models/smollm2-135m-rlpa --check

For each eval set and decoding setting (`greedy`; `served`, the gateway's default sampling) the
card shows the model beside the notebooks `echo` and `echo1` on the same users, with the model's
paired difference to each, and the eval-only judge's response score against the bare base (a
`base` system in the runs) on the same turns. A setting with no run says "not measured" and why.
The numbers come from per-user rows, committed beside the card (`eval/<set>-<setting>.json`,
stripped of turns and of every field no number needs): building checks that they reproduce
each run's own metrics, and `check_card` that they reproduce the card's. The card hashes what
its numbers depend on (the adapter, the system prompt as rendered, the output grammar, the metric
code) and the eval sets, with each set's role and, for the held-out set, how often it has been
read; `check_card` names anything that changed since, so a test fails until the card is re-run.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from server.rlpa import checkpoint, grammar, prompt
from training.eval_data import DEV_V1, TRANSFER_V1, TRANSFER_V2, UPDATES_DEV_V1
from training.evaluate import card_markdown, card_numbers
from training.evaluate.baselines import BASELINES
from training.evaluate.card_numbers import BASE_METRICS, METRICS

ROOT = Path(__file__).resolve().parents[2]
CARD_FORMAT = 2
"""eval.json's layout. The stage card before it (no `card_format`) showed lenient metrics only."""
ADAPTER = "adapter.gguf"
PER_USER = "eval"
"""The folder of the model's per-user files, one per eval set and setting."""
METRIC_CODE = tuple(
    ROOT / "training" / name
    for name in (
        "evaluate/yardsticks.py",
        "evaluate/transfer.py",
        "evaluate/baselines.py",
        "evaluate/intervals.py",
        "evaluate/judge.py",  # the response score and requests answered
        "eval_data/__init__.py",  # keyword matching and the negation guard
    )
)
READINGS = ROOT / "training" / "eval_data" / "README.md"
"""Where a held-out set's readings are recorded: its "## Readings" section, a numbered line each."""
RERUN = "re-run the card (training/README.md, 'The model card')"

Role = Literal["dev", "held-out"]
EVAL_SETS: dict[str, tuple[Path, Role]] = {
    "dev_v1": (DEV_V1, "dev"),
    "transfer_v1": (TRANSFER_V1, "dev"),
    "updates_dev_v1": (UPDATES_DEV_V1, "dev"),
    "transfer_v2": (TRANSFER_V2, "held-out"),
}
"""Each eval set and its role (training/eval_data/README.md): transfer v1 is a second dev set."""
SETTINGS: dict[str, dict[str, float]] = {
    "greedy": {"temperature": 0.0},
    "served": {"temperature": 0.7, "top_p": 0.9},
}
"""What the systems of a run were sent: greedy decoding (recipe `transfer`), and the gateway's
default sampling for the embedded model (recipe `transfer_served`; server/settings.py
`embedded_temperature` and `embedded_top_p`, which a test holds equal)."""


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _repo_path(path: Path) -> str:
    return str(path.resolve().relative_to(ROOT))


def contract_version(model_dir: Path) -> int:
    return checkpoint.contract_version(model_dir)


def current_hashes(model_dir: str | Path) -> dict[str, dict[str, str]]:
    """sha256 of what the card's numbers depend on, as the repository holds it now."""
    model_dir = Path(model_dir)
    version = contract_version(model_dir)
    system_prompt = prompt.build_messages([], None, version)[0]["content"]
    return {
        "adapter": {ADAPTER: sha256((model_dir / ADAPTER).read_bytes())},
        "prompt": {
            f"server/rlpa/prompt.py (system prompt, contract v{version})": sha256(system_prompt)
        },
        "grammar": {"server/rlpa/grammar.py (FORMAT_GBNF)": sha256(grammar.FORMAT_GBNF)},
        "metric_code": {_repo_path(p): sha256(p.read_bytes()) for p in METRIC_CODE},
    }


def read_count(path: Path, readings: Path | None = None) -> int:
    """The readings of the set at `path` recorded in training/eval_data/README.md: numbered
    lines of the "## Readings" section under the set's own heading."""
    lines = (readings or READINGS).read_text().splitlines()
    top = [i for i, line in enumerate(lines) if line.startswith("# ")] + [len(lines)]
    for start, end in itertools.pairwise(top):
        if f"`{path.name}`" not in lines[start]:
            continue
        section = lines[start:end]
        if "## Readings" not in section:
            break
        below = section[section.index("## Readings") + 1 :]
        below = below[: next((i for i, x in enumerate(below) if x.startswith("#")), len(below))]
        return sum(1 for line in below if line.split(". ", 1)[0].isdigit())
    raise ValueError(f"{readings or READINGS} records no readings of {path.name}")


def eval_sets(measured: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Every eval set's path, sha256 and role; a held-out set's read count. A held-out set on
    the card must have this reading recorded first."""
    sets: dict[str, dict[str, Any]] = {}
    for name, (path, role) in EVAL_SETS.items():
        entry: dict[str, Any] = {"path": _repo_path(path), "sha256": sha256(path.read_bytes())}
        entry["role"] = role
        if role == "held-out":
            entry["read_count"] = read_count(path)
            if name in measured and entry["read_count"] == 0:
                raise ValueError(
                    f"{name} is held out: record this reading in the Readings section of "
                    f"{READINGS} before putting it on the card"
                )
        sets[name] = entry
    return sets


def _planned(
    runs: Mapping[tuple[str, str], Any], not_measured: Mapping[tuple[str, str], str]
) -> list[tuple[str, str]]:
    """Every (set, setting) of the sets named, in the card's order; each is a run or says why
    it was not measured."""
    for key in [*runs, *not_measured]:
        if key[0] not in EVAL_SETS or key[1] not in SETTINGS:
            raise ValueError(f"{key}: sets are {list(EVAL_SETS)}, settings {list(SETTINGS)}")
        if key in runs and key in not_measured:
            raise ValueError(f"{key}: both a run and a reason it was not measured")
    named = {s for s, _ in [*runs, *not_measured]}
    planned = [(s, t) for s in EVAL_SETS if s in named for t in SETTINGS]
    for key in planned:
        if key not in runs and not (not_measured.get(key) or "").strip():
            raise ValueError(f"{key}: no run; pass one, or say why it was not measured")
    if not runs:
        raise ValueError("no runs: a card needs at least one")
    return planned


def _paths(value: str | Path | Sequence[str | Path]) -> list[Path]:
    return [Path(value)] if isinstance(value, str | Path) else [Path(p) for p in value]


def build_card(
    model_dir: str | Path,
    runs: Mapping[tuple[str, str], str | Path | Sequence[str | Path]],
    *,
    not_measured: Mapping[tuple[str, str], str] | None = None,
    system: str = "shipped",
    base: str = "base",
) -> dict[str, Any]:
    """Write the card of the model in `model_dir` from transfer runs, and return it.

    `runs`: {(set, setting): a transfer.json, or several whose systems are joined (a notebook
    may come from any)}, sets from EVAL_SETS and settings from SETTINGS. `system` names the
    model in the runs, `base` the bare base (optional: without it the card says the response
    score against it was not measured). Each setting of a set named needs a run, or a reason
    in `not_measured`. Writes eval.json, eval/<set>-<setting>.json, the README's card section,
    and the card into each rlpa.json (an adapter's metadata carries its card)."""
    model_dir = Path(model_dir)
    not_measured = dict(not_measured or {})
    planned = _planned(runs, not_measured)
    sets = eval_sets([s for s, t in planned if (s, t) in runs])
    results: dict[str, dict[str, Any]] = {}
    files: dict[str, str] = {}
    for set_name, setting in planned:
        if (set_name, setting) not in runs:
            reason = not_measured[set_name, setting].strip()
            results.setdefault(set_name, {})[setting] = {"not_measured": reason}
            continue
        record, reported = card_numbers.read_runs(
            _paths(runs[set_name, setting]),
            sets[set_name],
            SETTINGS[setting],
            system=system,
            base=base,
        )
        found = card_numbers.numbers(record, system, base)
        as_run = {
            "metrics": {n: {m: reported[n][m] for m in METRICS} for n in found["metrics"]},
            "base": {m: reported[base][m] for m in BASE_METRICS} if base in reported else {},
        }
        if wrong := card_numbers.differences(
            found, as_run, f"{set_name} {setting}", complete=False
        ):
            raise ValueError("the per-user rows do not give the runs' metrics: " + "; ".join(wrong))
        relative = f"{PER_USER}/{set_name}-{setting}.json"
        files[relative] = card_numbers.per_user_json(record)
        results.setdefault(set_name, {})[setting] = {
            "per_user": relative,
            "per_user_sha256": sha256(files[relative]),
            "users": len(record["systems"][system]["users"]),
            "sampling": record["sampling"][system],
            "bootstrap": record["bootstrap"],
            "runs": record["runs"],
            **found,
        }
    card = {
        "card_format": CARD_FORMAT,
        "model": model_dir.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "contract_version": contract_version(model_dir),
        "system": system,
        "base": base,
        "hashes": current_hashes(model_dir),
        "eval_sets": sets,
        "settings": SETTINGS,
        "results": results,
    }
    _write(model_dir, card, files)
    return card


def _write(model_dir: Path, card: Mapping[str, Any], files: Mapping[str, str]) -> None:
    (model_dir / PER_USER).mkdir(exist_ok=True)
    for stale in _unnamed(model_dir, {model_dir / name for name in files}):
        stale.unlink()  # an earlier card's per-user file that this card does not name
    for name, text in files.items():
        (model_dir / name).write_text(text)
    (model_dir / "eval.json").write_text(json.dumps(card, indent=2) + "\n")
    readme = model_dir / "README.md"
    before = readme.read_text() if readme.is_file() else f"# {model_dir.name}\n"
    readme.write_text(card_markdown.with_section(before, card_markdown.markdown(card)))
    for meta in _metadata(model_dir):
        checkpoint.write_eval_card(meta, dict(card))


def _metadata(model_dir: Path) -> list[Path]:
    return [p for p in [model_dir / "rlpa.json", *model_dir.glob("*/rlpa.json")] if p.is_file()]


def _unnamed(model_dir: Path, named: set[Path]) -> list[Path]:
    return sorted(p for p in (model_dir / PER_USER).glob("*.json") if p not in named)


def check_card(model_dir: str | Path) -> list[str]:
    """What is missing from the card of `model_dir` or out of date, each named; [] for a card
    complete and consistent with the repository, its per-user files and its README."""
    model_dir = Path(model_dir)
    card = json.loads((model_dir / "eval.json").read_text())
    if card.get("card_format") != CARD_FORMAT:
        return [f"{model_dir / 'eval.json'} is not a card of format {CARD_FORMAT}: {RERUN}"]
    problems = _check_inputs(card, model_dir)
    named = set()
    for set_name, by_setting in card["results"].items():
        if list(by_setting) != list(SETTINGS):
            problems.append(f"{set_name}: settings {list(by_setting)}, not {list(SETTINGS)}")
        for setting, result in by_setting.items():
            if "per_user" in result:
                named.add(model_dir / result["per_user"])
                problems += _check_result(model_dir, card, set_name, setting, result)
            elif not str(result.get("not_measured", "")).strip():
                problems.append(f"{set_name} {setting}: neither measured nor said why not")
    problems += [f"{p}: a per-user file the card does not name" for p in _unnamed(model_dir, named)]
    if card_markdown.section((model_dir / "README.md").read_text()) != card_markdown.markdown(card):
        problems.append(f"README.md: its card section is not eval.json's: {RERUN}")
    for meta in _metadata(model_dir):
        if json.loads(meta.read_text()).get("eval") != card:
            problems.append(f"{meta.relative_to(model_dir)}: its eval is not eval.json: {RERUN}")
    return problems


def _check_inputs(card: Mapping[str, Any], model_dir: Path) -> list[str]:
    """The hashed files and the eval sets, against the card's record of them."""
    problems = []
    for group, files in current_hashes(model_dir).items():
        recorded = card["hashes"].get(group, {})
        for name in sorted(files.keys() | recorded.keys()):
            if files.get(name) != recorded.get(name):
                problems.append(f"{group} {name} changed since the card was built: {RERUN}")
    now = eval_sets([])
    for name, entry in card["eval_sets"].items():
        same = ("path", "sha256", "role")
        if name not in now or any(entry[k] != now[name][k] for k in same):
            problems.append(f"eval set {name} changed since the card was built: {RERUN}")
        elif entry.get("read_count", 0) > now[name].get("read_count", 0):
            problems.append(f"{name}: the card counts readings that {READINGS} does not record")
        measured = any("per_user" in r for r in card["results"].get(name, {}).values())
        if entry["role"] == "held-out" and measured and entry.get("read_count", 0) < 1:
            problems.append(f"{name} is held out and on the card, but its reading is not counted")
    return problems


def _check_result(
    model_dir: Path, card: Mapping[str, Any], set_name: str, setting: str, result: Mapping[str, Any]
) -> list[str]:
    """One set and setting: every metric there for the model and both notebooks, and the
    numbers those of its per-user file."""
    where = f"{set_name} {setting}"
    problems = []
    for group, names in (("metrics", (card["system"], *BASELINES)), ("against", BASELINES)):
        for name in names:
            if lacking := [m for m in METRICS if m not in (result[group].get(name) or {})]:
                problems.append(f"{where}: {group} {name} lacks {', '.join(lacking)}")
    if any(result["sampling"].get(k) != v for k, v in SETTINGS[setting].items()):
        problems.append(f"{where}: the model was sent {result['sampling']}, not {setting}")
    path = model_dir / result["per_user"]
    if not path.is_file():
        return [*problems, f"{where}: {result['per_user']} is missing: {RERUN}"]
    text = path.read_text()
    if sha256(text) != result["per_user_sha256"]:
        problems.append(f"{where}: {result['per_user']} changed since the card was built")
    record = json.loads(text)
    if record["transfer_set"]["sha256"] != card["eval_sets"][set_name]["sha256"]:
        problems.append(f"{where}: {result['per_user']} was measured on another {set_name}")
    found = card_numbers.numbers(record, card["system"], card["base"])
    return problems + card_numbers.differences(found, result, f"{where} ({result['per_user']})")


def _keyed(values: Sequence[str], flag: str) -> dict[tuple[str, str], str]:
    pairs = {}
    for value in values:
        key, sep, target = value.partition("=")
        set_name, colon, setting = key.partition(":")
        if not (sep and colon):
            raise SystemExit(f"{flag} takes SET:SETTING=VALUE, not {value!r}")
        pairs[set_name, setting] = target
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate.card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", help="the model's folder: models/NAME")
    parser.add_argument(
        "--run", action="append", default=[], metavar="SET:SETTING=TRANSFER_JSON[,TRANSFER_JSON]"
    )
    parser.add_argument("--not-measured", action="append", default=[], metavar="SET:SETTING=WHY")
    parser.add_argument("--system", default="shipped", help="the model's name in the runs")
    parser.add_argument("--base", default="base", help="the bare base's name in the runs")
    parser.add_argument("--check", action="store_true", help="only check the card")
    args = parser.parse_args(argv)
    if not args.check:
        runs = {key: value.split(",") for key, value in _keyed(args.run, "--run").items()}
        not_measured = _keyed(args.not_measured, "--not-measured")
        card = build_card(
            args.model_dir, runs, not_measured=not_measured, system=args.system, base=args.base
        )
        print(card_markdown.markdown(card))
    problems = check_card(args.model_dir)
    print("\n".join(problems) or f"{args.model_dir}: the card is complete and up to date")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
