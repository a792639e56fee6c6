"""Why a GRPO run lowers its own reward: two controlled readings (issue 19, step 4).

`logs` pairs the JSONL logs (`<output_dir>/log.jsonl`) of two runs with the same recipe, seed
and state schedule, a control at `learning_rate: 0` and a treatment, step by step. The control
never changes its weights, so whatever its reward does along the schedule comes from the states
(which profiles, which turns), not from learning; the treatment's change beyond it does.

`fixed` samples N candidates at a fixed set of conversation states with each adapter, the same
sampling seed per state, and scores them with the training reward. The states are rolled out
once, best-of-n as in training, with the first adapter (the SFT distribution), from the first
conversations of the recipe's schedule. It also reads a sampled KL to the first adapter, the
mean per-token log-ratio on each adapter's own samples (with `beta: 0` TRL computes no KL).

    python -m training.evaluate.rl_diagnosis logs --control runs/rl-diag/control/log.jsonl \\
        --treatment runs/rl-diag/treat/log.jsonl --window 5 [--json OUT]
    python -m training.evaluate.rl_diagnosis fixed --recipe rl_cpu \\
        --adapter sft=models/smollm2-135m-rlpa/hf-adapter --adapter rl=runs/rl-diag/treat/final \\
        --conversations 4 --candidates 8 [--set KEY=VALUE] [--json OUT]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from training.evaluate.intervals import Estimate, paired_bootstrap

LOGGED = (
    "rewards/profile/mean",
    "rewards/response/mean",
    "reward",
    "reward_std",
    "frac_reward_zero_std",
    "rollout/turn",
    "rollout/best_reward",
    "completions/mean_length",
    "completions/clipped_ratio",
    "clip_ratio/region_mean",
    "entropy",
    "kl",
)
"""What `logs` reads from each step; `kl` only exists when beta is not 0."""


# --- logs: control vs treatment, paired by step ---------------------------------------------


def read_log(path: Path) -> dict[int, dict[str, float]]:
    """Each training step's logged metrics (the lines with a `reward`), by step."""
    steps: dict[int, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "reward" in row:
            steps[int(row["step"])] = {
                k: float(v) for k, v in row.items() if isinstance(v, int | float)
            }
    return steps


@dataclass(frozen=True)
class Window:
    first: int
    last: int
    control: float
    treatment: float

    @property
    def difference(self) -> float:
        return self.treatment - self.control


def paired_windows(
    control: Mapping[int, Mapping[str, float]],
    treatment: Mapping[int, Mapping[str, float]],
    key: str,
    window: int,
) -> list[Window]:
    """Means of `key` over windows of `window` steps, on the steps both runs logged."""
    steps = sorted(s for s in set(control) & set(treatment) if key in control[s])
    steps = [s for s in steps if key in treatment[s]]
    windows = []
    for start in range(0, len(steps), window):
        chunk = steps[start : start + window]
        windows.append(
            Window(
                chunk[0],
                chunk[-1],
                fmean(control[s][key] for s in chunk),
                fmean(treatment[s][key] for s in chunk),
            )
        )
    return windows


def paired_steps(
    control: Mapping[int, Mapping[str, float]],
    treatment: Mapping[int, Mapping[str, float]],
    key: str,
    skip: int = 0,
) -> Estimate | None:
    """Treatment minus control on `key`, step by step after the first `skip` steps, with a
    bootstrap interval over steps (steps of one run are not independent: read it as a guide)."""
    steps = [
        s
        for s in sorted(set(control) & set(treatment))
        if s > skip and key in control[s] and key in treatment[s]
    ]
    return paired_bootstrap(
        [(treatment[s][key], 1.0) for s in steps], [(control[s][key], 1.0) for s in steps]
    )


def logs_report(
    control: Mapping[int, Mapping[str, float]],
    treatment: Mapping[int, Mapping[str, float]],
    window: int,
    skip: int = 2,
) -> dict[str, Any]:
    """Windows and a paired difference over steps for every logged metric both runs have."""
    keys = [
        k
        for k in LOGGED
        if any(k in row for row in control.values()) and any(k in row for row in treatment.values())
    ]
    report: dict[str, Any] = {"steps": sorted(set(control) & set(treatment)), "metrics": {}}
    for key in keys:
        paired = paired_steps(control, treatment, key, skip)
        report["metrics"][key] = {
            "windows": [
                {**asdict(w), "difference": w.difference}
                for w in paired_windows(control, treatment, key, window)
            ],
            f"paired_after_step_{skip}": paired.to_dict() if paired else None,
        }
    report["not_logged"] = [k for k in LOGGED if k not in keys]
    return report


def logs_markdown(report: Mapping[str, Any]) -> str:
    lines = []
    for key, found in report["metrics"].items():
        lines += [
            f"\n{key}\n",
            "| steps | control | treatment | difference |",
            "| --- | ---: | ---: | ---: |",
        ]
        for w in found["windows"]:
            lines.append(
                f"| {w['first']}-{w['last']} | {w['control']:.3f} | {w['treatment']:.3f} | "
                f"{w['difference']:+.3f} |"
            )
        paired = next(v for k, v in found.items() if k.startswith("paired"))
        if paired:
            lines.append(
                f"| paired, per step | | | {paired['mean']:+.3f} "
                f"[{paired['low']:+.3f}, {paired['high']:+.3f}] (n={paired['users']}) |"
            )
    if report["not_logged"]:
        lines.append(f"\nnot logged: {', '.join(report['not_logged'])}")
    return "\n".join(lines)


# --- fixed: the same states, before and after ----------------------------------------------


@dataclass
class StateScores:
    """One adapter's candidates at one state."""

    profile: list[float]
    response: list[float]
    format_ok: list[bool]
    empty_block: list[bool]
    """The candidate's profile block adds nothing (no block, or an empty one)."""
    tokens: list[int]
    truncated: list[bool]
    log_ratio: float | None = None
    """Mean per-token log p(this adapter) - log p(first adapter) on these samples."""

    @property
    def totals(self) -> list[float]:
        return [p + r for p, r in zip(self.profile, self.response, strict=True)]


@dataclass
class FixedState:
    key: str
    turn: int
    scores: dict[str, StateScores] = field(default_factory=dict)


def collect_states(
    rollout: Any, conversations: Sequence[int], turns: int, n: int
) -> list[tuple[str, Any]]:
    """(state key, a copy of the conversation as it stood) for every turn of `conversations`,
    rolled out best-of-n by `rollout`'s own generator, all conversations one turn at a time."""
    from training.rl_rollout import state_key

    states: list[tuple[str, Any]] = []
    sample = rollout.generate

    for turn in range(turns):
        keys = [state_key(i, turn) for i in conversations]

        def snapshot(ids: list[list[int]], count: int, keys: list[str] = keys) -> Any:
            for key, index in zip(keys, conversations, strict=True):
                states.append((key, copy.deepcopy(rollout.live[index])))
            return sample(ids, count)

        rollout.generate = snapshot
        rollout([k for k in keys for _ in range(n)], None)
    rollout.generate = sample
    return states


def sampler(model: Any, tokenizer: Any, config: Any) -> Any:
    """A `Generate` sampling as the recipe does, without the trainer: each distinct prompt
    gets its n samples with the torch seed set first (the recipe's seed plus a count), so the
    states rolled out are the same on every run."""
    calls = [0]

    def generate(prompt_ids: list[list[int]], n: int) -> tuple[list[list[int]], None]:
        completions: list[list[int]] = []
        for ids in prompt_ids[::n]:
            completions += sample_one(model, tokenizer, config, ids, n, config.seed + calls[0])
            calls[0] += 1
        return completions, None

    return generate


def sample_one(
    model: Any, tokenizer: Any, config: Any, ids: list[int], n: int, seed: int
) -> list[list[int]]:
    """n sampled completions (each cut after its first end-of-sequence token) of one prompt."""
    import torch

    torch.manual_seed(seed)
    prompt = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=True,
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k or 0,
            max_new_tokens=config.max_completion_length,
            num_return_sequences=n,
            pad_token_id=tokenizer.pad_token_id,
        )
    completions = []
    for row in out[:, len(ids) :].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id) + 1]
        completions.append(row)
    return completions


def token_logps(
    model: Any, ids: list[int], completions: list[list[int]], temperature: float
) -> Any:
    """Per-token log-probabilities of each completion (temperature-scaled, as sampled), and
    their mask; the prompt is shared, completions are right-padded."""
    import torch

    width = max(len(c) for c in completions) or 1
    rows = [ids + c + [0] * (width - len(c)) for c in completions]
    mask = torch.tensor([[1.0] * len(c) + [0.0] * (width - len(c)) for c in completions])
    inputs = torch.tensor(rows)
    with torch.no_grad():
        logits = model(input_ids=inputs).logits[:, len(ids) - 1 : -1].float() / temperature
    logps = torch.log_softmax(logits, dim=-1)
    picked = logps.gather(-1, inputs[:, len(ids) :].unsqueeze(-1)).squeeze(-1)
    return picked, mask


def fixed_states(
    config: Any,
    adapters: Sequence[tuple[str, str]],
    conversations: Sequence[int],
    candidates: int,
    seed: int = 0,
) -> list[FixedState]:
    """Every adapter's candidates at the states the first adapter rolls out."""
    from server.rlpa import parse_output
    from training.dialogues import training_profiles
    from training.policy import load_policy
    from training.rl import make_scorer, make_user
    from training.rl_rollout import ConversationRollout

    (first, first_path), *others = adapters
    first_config = copy.copy(config)  # GRPOConfig's __post_init__ would not survive replace()
    first_config.init_adapter = first_path
    policy, tokenizer = load_policy(first_config)
    model: Any = policy  # a PeftModel: adapters load and switch by name
    for name, path in others:
        model.load_adapter(path, adapter_name=name)
    model.eval()
    names = ["default"] + [name for name, _ in others]
    labels = [first] + [name for name, _ in others]

    profiles = training_profiles(config.profiles_path, config.num_profiles, config.profile_seed)
    scorer = make_scorer(config)
    rollout = ConversationRollout(
        profiles,
        make_user(config),
        scorer,
        tokenizer,
        num_generations=config.num_generations,
        max_turns=config.max_turns,
        seed=config.seed,
        generate=sampler(model, tokenizer, config),
        change_at_turn=config.change_at_turn,
        version=config.contract_version,
        carried_share=config.carried_share,
    )
    model.set_adapter("default")
    states = collect_states(rollout, conversations, config.max_turns, config.num_generations)

    results = []
    for number, (key, conversation) in enumerate(states):
        ids = rollout._prompt_ids(conversation)
        found = FixedState(key, conversation.turns)
        for name, label in zip(names, labels, strict=True):
            model.set_adapter(name)
            completions = sample_one(model, tokenizer, config, ids, candidates, seed + number)
            texts = tokenizer.batch_decode(completions, skip_special_tokens=True)
            profile, response = scorer.score(texts, [conversation] * candidates)
            parsed = [parse_output(t) for t in texts]
            scores = StateScores(
                profile,
                response,
                [p.format_ok for p in parsed],
                [not p.profile for p in parsed],
                [len(c) for c in completions],
                [tokenizer.eos_token_id not in c for c in completions],
            )
            if name != "default":
                mine, mask = token_logps(model, ids, completions, config.temperature)
                model.set_adapter("default")
                theirs, _ = token_logps(model, ids, completions, config.temperature)
                scores.log_ratio = float(((mine - theirs) * mask).sum() / mask.sum().clamp(min=1))
            found.scores[label] = scores
        results.append(found)
    return results


def fixed_summary(states: Sequence[FixedState]) -> dict[str, Any]:
    """Per adapter: means over all candidates, plus best-of-n and the share of states whose
    candidates all score the same (zero advantage); per later adapter: the paired difference
    in mean total reward per state to the first, with a bootstrap interval over states."""
    labels = list(states[0].scores)
    summary: dict[str, Any] = {"states": len(states), "adapters": {}}
    for label in labels:
        rows = [s.scores[label] for s in states]

        def pooled(values: Sequence[Sequence[float]]) -> float:
            return fmean(v for row in values for v in row)

        entry: dict[str, Any] = {
            "profile": pooled([r.profile for r in rows]),
            "response": pooled([r.response for r in rows]),
            "total": pooled([r.totals for r in rows]),
            "best_of_n": fmean(max(r.totals) for r in rows),
            "zero_std_share": fmean(float(len(set(r.totals)) == 1) for r in rows),
            "format_ok": pooled([[float(x) for x in r.format_ok] for r in rows]),
            "empty_block": pooled([[float(x) for x in r.empty_block] for r in rows]),
            "tokens": pooled([[float(x) for x in r.tokens] for r in rows]),
            "truncated": pooled([[float(x) for x in r.truncated] for r in rows]),
        }
        ratios = [r.log_ratio for r in rows if r.log_ratio is not None]
        if ratios:
            entry["log_ratio_to_first"] = fmean(ratios)
        if label != labels[0]:
            paired = paired_bootstrap(
                [(fmean(s.scores[label].totals), 1.0) for s in states],
                [(fmean(s.scores[labels[0]].totals), 1.0) for s in states],
            )
            entry["total_minus_first"] = paired.to_dict() if paired else None
        summary["adapters"][label] = entry
    by_turn: dict[int, dict[str, list[float]]] = {}
    for s in states:
        for label in labels:
            by_turn.setdefault(s.turn, {}).setdefault(label, []).append(
                fmean(s.scores[label].totals)
            )
    summary["total_by_turn"] = {
        turn: {label: fmean(v) for label, v in found.items()}
        for turn, found in sorted(by_turn.items())
    }
    return summary


def fixed_markdown(summary: Mapping[str, Any]) -> str:
    columns = ["profile", "response", "total", "best_of_n", "zero_std_share", "format_ok"]
    columns += ["empty_block", "tokens", "truncated", "log_ratio_to_first"]
    lines = [
        f"{summary['states']} states",
        "| adapter | " + " | ".join(columns) + " | total - first [95%] |",
        "| --- |" + " ---: |" * (len(columns) + 1),
    ]
    for label, entry in summary["adapters"].items():
        cells = [f"{entry[c]:.3f}" if c in entry else "" for c in columns]
        paired = entry.get("total_minus_first")
        diff = (
            f"{paired['mean']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]" if paired else ""
        )
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {diff} |")
    lines.append("\nmean total by turn: " + json.dumps(summary["total_by_turn"]))
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------


def _named(spec: str) -> tuple[str, str]:
    name, sep, path = spec.partition("=")
    return (name, path) if sep else (Path(spec).name, spec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate.rl_diagnosis")
    commands = parser.add_subparsers(dest="command", required=True)
    logs = commands.add_parser("logs", help="control vs treatment, paired by step")
    logs.add_argument("--control", type=Path, required=True)
    logs.add_argument("--treatment", type=Path, required=True)
    logs.add_argument("--window", type=int, default=5)
    logs.add_argument("--skip", type=int, default=2, help="steps both runs share (warm-up)")
    fixed = commands.add_parser("fixed", help="the same states, sampled by each adapter")
    fixed.add_argument("--recipe", default="rl_cpu")
    fixed.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    fixed.add_argument("--adapter", action="append", required=True, metavar="[NAME=]PATH")
    fixed.add_argument("--conversations", type=int, default=4)
    fixed.add_argument("--first-conversation", type=int, default=0)
    fixed.add_argument("--candidates", type=int, default=8)
    fixed.add_argument("--seed", type=int, default=0)
    for sub in (logs, fixed):
        sub.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)

    if args.command == "logs":
        report = logs_report(
            read_log(args.control), read_log(args.treatment), args.window, args.skip
        )
        text = logs_markdown(report)
    else:
        from training.config import RLRunConfig
        from training.recipe import load_config, parse_overrides

        config = load_config(RLRunConfig, args.recipe, parse_overrides(args.set))
        start = args.first_conversation
        states = fixed_states(
            config,
            [_named(a) for a in args.adapter],
            range(start, start + args.conversations),
            args.candidates,
            args.seed,
        )
        report = {
            "summary": fixed_summary(states),
            "states": [asdict(s) for s in states],
        }
        text = fixed_markdown(report["summary"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
