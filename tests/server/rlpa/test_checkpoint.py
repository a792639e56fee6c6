"""rlpa.json, the contract file beside a checkpoint: what is written is read back, from a
checkpoint directory and from beside a single-file adapter, and a missing file is contract 1."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from server.rlpa import LATEST_VERSION, SUPPORTED_VERSIONS
from server.rlpa.checkpoint import (
    MISSING_FILE_VERSION,
    ContractVersionError,
    contract_version,
    read_rlpa_json,
    rlpa_json_path,
    write_rlpa_json,
)


def _write(folder: Path, version: int = LATEST_VERSION) -> Path:
    return write_rlpa_json(
        folder,
        export_format="gguf-lora",
        base_model="",
        recipe={"lora_r": 16},
        eval_summary={"f1": 0.5},
        contract_version=version,
    )


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_what_is_written_is_read_from_the_folder_the_file_and_beside_an_adapter(
    tmp_path: Path, version: int
) -> None:
    written = _write(tmp_path, version)
    adapter = tmp_path / "adapter.gguf"  # the gateway's view: the file beside the adapter

    assert written == tmp_path / "rlpa.json" == rlpa_json_path(adapter)
    for where in (tmp_path, written, adapter):
        card = read_rlpa_json(where)
        assert card["contract_version"] == contract_version(where) == version
        assert (card["base_model"], card["format"]) == ("", "gguf-lora")
        assert card["recipe"] == {"lora_r": 16} and card["eval"] == {"f1": 0.5}
        assert card["created_at"]


def test_a_missing_file_means_contract_1_and_says_how_to_say_otherwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = tmp_path / "adapter.gguf"
    adapter.write_bytes(b"")

    with caplog.at_level(logging.WARNING, logger="server.rlpa.checkpoint"):
        assert read_rlpa_json(tmp_path) == {"contract_version": 1}
        assert contract_version(adapter) == MISSING_FILE_VERSION == 1
    assert "no rlpa.json beside it" in caplog.text and "RLPA_CONTRACT_VERSION=2" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"contract_version": 7}', "RLPA contract 7 is not one"),
        ('{"contract_version": "2"}', "contract_version '2'"),
        ("[2]", "not a JSON object"),
        ("{", "not a valid rlpa.json"),
    ],
)
def test_a_file_naming_another_contract_or_no_json_object_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "rlpa.json").write_text(text)
    with pytest.raises(ContractVersionError, match=message):
        read_rlpa_json(tmp_path)


def test_a_file_without_a_version_is_contract_1_like_no_file(tmp_path: Path) -> None:
    (tmp_path / "rlpa.json").write_text(json.dumps({"base_model": ""}))
    assert contract_version(tmp_path) == 1


def test_writing_an_unspoken_contract_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractVersionError, match="contract 9"):
        _write(tmp_path, 9)
    assert not (tmp_path / "rlpa.json").exists()
