#!/usr/bin/env bash
# Speed figures on one CUDA GPU, in bf16. Two parts, so that each fits a short GPU lease:
#   bash benchmarks/speed/gpu.sh minilm OUT_DIR
#       the default model (all-MiniLM-L6-v2): inference from SMILES on 10,000 HIV molecules, text-feature
#       caching on 10,000 HIV descriptions, and the default BACE random_0 training run (the benchmark harness).
#   bash benchmarks/speed/gpu.sh qwen OUT_DIR QWEN_TOKENIZER_DIR
#       a Qwen2.5-size text model (random weights, built from its config): text-feature caching for the
#       0.5B and 7B shapes on BACE, then a DeepSpeed ZeRO-3 launch (configs/accelerate_zero3.yaml, one
#       process) that trains ProtoMol with LoRA on the 0.5B model for 30 steps.
# Every figure lands in OUT_DIR (a relative one is taken from the repository root) as JSON (and the ZeRO-3 log);
# docs/benchmarks.md quotes them.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root: the modules and scripts/train.py run from there
part=${1:?part: minilm or qwen}
out=${2:?output folder}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

case "$part" in
minilm)
  python -m benchmarks.speed.inference --device cuda --dtype bfloat16 --output "$out/inference_gpu_bf16.json"
  python -m benchmarks.speed.text_cache --dataset_name hiv --num_molecules 10000 --device cuda --dtype bfloat16 \
    --output "$out/text_cache_gpu_minilm.json"
  python -m benchmarks.harness --config default --datasets bace --splits random_0 --results_dir "$out/results" \
    --output_root "${TMPDIR:-/tmp}/protomol_gpu_runs" --docs_file "$out/benchmarks_gpu.md" -- --bf16
  ;;
qwen)
  tokenizer=${3:?Qwen tokenizer folder}
  qwen_dir="${TMPDIR:-/tmp}/qwen2.5-0.5b-random"
  python -m benchmarks.speed.text_cache --text_size qwen2.5-0.5b --tokenizer "$tokenizer" --device cuda \
    --dtype bfloat16 --save_text_model "$qwen_dir" --output "$out/text_cache_gpu_qwen2.5-0.5b.json"
  python -m benchmarks.speed.text_cache --text_size qwen2.5-7b --tokenizer "$tokenizer" --device cuda \
    --dtype bfloat16 --output "$out/text_cache_gpu_qwen2.5-7b.json"
  start=$(date +%s)
  accelerate launch --config_file configs/accelerate_zero3.yaml --num_processes 1 scripts/train.py \
    --dataset_name bace --split_file random_0 --text_model "$qwen_dir" --text_model_mode lora --bf16 \
    --max_steps 30 --per_device_train_batch_size 32 --output_dir "${TMPDIR:-/tmp}/protomol_zero3" \
    2>&1 | tee "$out/zero3_qwen2.5-0.5b.log"
  echo "{\"zero3_launch_wall_s\": $(($(date +%s) - start))}" | tee "$out/zero3_qwen2.5-0.5b.json"
  ;;
*)
  echo "unknown part $part (minilm or qwen)" >&2
  exit 2
  ;;
esac
