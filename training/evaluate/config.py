"""What `rlpa eval` runs: the systems under test and the protocol, loaded from a YAML recipe by
the one loader (`training.recipe.load_config`) like every stage's config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from training.components import ComponentArgs

SECRET_FIELDS = ("api_key", "admin_api_key")


@dataclass
class SystemConfig:
    """One system under test: a local checkpoint, a running gateway, or a model-free notebook
    (`echo`: every user message verbatim; `echo1`: each cut to its first statement; see
    baselines.py)."""

    name: str
    kind: Literal["checkpoint", "gateway", "echo", "echo1"] = "checkpoint"
    # checkpoint: a merged HF directory, a PEFT adapter directory, or a GGUF file;
    # empty means the shipped SmolLM2 base (the paper's "base" row).
    path: str = ""
    base_model: str | None = None  # an adapter's base, overriding what the adapter names
    device: str = "cpu"
    # The contract a checkpoint is prompted with; None: its rlpa.json says (none: 1, the rule of
    # server.rlpa.checkpoint), a bare base the latest. Set it for a HF base directory.
    contract_version: int | None = None
    # gateway: its root URL (the /v1 and /admin routes hang off it)
    base_url: str | None = None
    model: str = "rlpa"
    api_key: str | None = None  # None: the RLPA_EVAL_API_KEY environment variable
    admin_api_key: str | None = None  # None: api_key (it needs the admin scope)
    profile_source: Literal["response", "admin"] = "response"
    # sampling, for both kinds
    max_new_tokens: int = 160
    temperature: float = 0.7
    top_p: float = 0.9
    do_sample: bool = True


@dataclass
class EvalConfig(ComponentArgs):
    """The user, matcher, judge and their endpoint (`endpoint_*`) are `ComponentArgs`, declared
    once for RL and eval; the llm user, matcher and judge all call that one endpoint."""

    systems: list[SystemConfig] = field(default_factory=list)
    # Fills every system's unset fields (sampling shared by all systems, say).
    system_defaults: dict[str, Any] = field(default_factory=dict)
    output_dir: str = "runs/eval"
    title: str = "RLPA evaluation"
    # Held-out users: the split of the users training drew from (a JSONL file, or num_profiles
    # generated), split exactly as training splits them (training.dialogues.training_profiles).
    # Keep these three equal to the training recipe's, or "held out" is not true. "all": every
    # profile in the file, for a file that is a test set already.
    profiles_path: str | None = None
    num_profiles: int = 400
    profile_seed: int = 0
    split: Literal["train", "validation", "test", "all"] = "test"
    users: int | None = 20  # the first N held-out profiles; None: all of them
    turns: int = 10
    seed: int = 0
    change_at_turn: int | None = None  # 1-based turn whose user message changes a preference
    # Share of simulated users whose first message states a fact (people often do).
    opener_fact_share: float = 0.0
    matcher_threshold: float | None = None  # None: the matcher's own default
    user_prefix: str = "rlpa-eval-"  # eval users' ids; erased on a gateway before each run
    # torch CPU threads while evaluating (None: torch's default). On a shared or busy CPU, 1 can
    # be several times faster: small ops across threads stall whenever one thread is descheduled.
    torch_threads: int | None = None
    # The hand-written transfer set (training/eval_data) instead of simulated users: a JSONL
    # file, None to run the simulated users. `transfer_users`: the first N users; None: all.
    transfer_path: str | None = None
    transfer_users: int | None = None
    bootstrap_resamples: int = 2000  # for the transfer metrics' 95% intervals

    def __post_init__(self) -> None:
        # A recipe lists systems as mappings: each becomes a SystemConfig, defaults first.
        self.systems = [self.system(s) for s in self.systems]

    def system(self, data: SystemConfig | Mapping[str, Any]) -> SystemConfig:
        """A system of this config: a mapping (a recipe's, a flag's) with `system_defaults` under
        it, unknown keys refused; a SystemConfig as it is."""
        if isinstance(data, SystemConfig):
            return data
        return system_config({**self.system_defaults, **data})

    def to_dict(self) -> dict[str, Any]:
        """The config as recorded in the results: secrets masked."""
        data = dataclasses.asdict(self)
        for item in [*data["systems"], data["system_defaults"]]:
            for key in SECRET_FIELDS:
                if item.get(key):
                    item[key] = "***"
        return data


def system_config(data: Mapping[str, Any]) -> SystemConfig:
    names = {f.name for f in dataclasses.fields(SystemConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown settings {unknown} for system {data.get('name')!r}")
    return SystemConfig(**data)
