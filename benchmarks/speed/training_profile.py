"""Profile ProtoMol training steps: where a step's time goes, by module and by operator.

Builds the default model (frozen MiniLM, cached token states, as `scripts/train.py` trains it), takes
--num_molecules molecules of a bundled set, and times --steps optimizer steps of --batch_size molecules:
  * the forward time of each part of the model (forward hooks: text input projection, atom encoder,
    GINE layers, refiner layers, cross-attention, readout and prototypes, predictor), and the rest of
    the step (backward, optimizer) as the remainder;
  * the operators with the most self CPU time (torch.profiler).
--bf16 autocasts as the Trainer's --bf16 does, on CPU (worth it where the CPU has AVX512-BF16 or AMX) and GPU.
On a GPU (--device cuda), the part times are the host's (the time to issue the work; a small model is often
limited by it), and the profile adds the GPU's busy time per step, the operators with the most GPU time and
the host-device synchronizations per step.
Writes the figures as JSON (--output) and prints them.

    python -m benchmarks.speed.training_profile --output benchmarks/results/profile_training.json
"""

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoTokenizer, set_seed

from benchmarks.speed.measure import elapsed_since, report_results
from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.data import load_table
from protomol_hf.loading import resolve_text_model
from protomol_hf.text_cache import ProtoMolCachedTextCollator, TextFeatureCache
from protomol_hf.training import DEFAULT_CACHE_DIR

# Forward time is summed per part; a module's name decides its part (the first pattern it contains).
PARTS = (
    ("cross_modal", "cross-attention"),
    ("refiner_layer", "refiner layers"),
    ("graph_layer", "GINE layers"),
    ("text_input_projection", "text input projection"),
    ("atom_encoder", "atom encoder"),
    ("prototype_space", "prototype space"),
    ("predictor", "predictor"),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="bace", help="Bundled set the molecules come from.")
    parser.add_argument("--num_molecules", type=int, default=256, help="Molecules taken from the start of the set.")
    parser.add_argument("--batch_size", type=int, default=32, help="Molecules per step (the training default).")
    parser.add_argument("--steps", type=int, default=16, help="Timed optimizer steps (after 2 warm-up steps).")
    parser.add_argument("--cache_dir", default=str(DEFAULT_CACHE_DIR), help="Text-feature cache folder.")
    parser.add_argument(
        "--config", default="{}", help="ProtoMolConfig options to change, as JSON, e.g. '{\"attention_dropout\": 0}'."
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Torch device (default: cuda when a GPU is visible, else cpu).",
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as the Trainer's --bf16.")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results.")
    return parser.parse_args(argv)


def timed_parts(model) -> tuple[dict, list]:
    """Forward hooks that add each part's forward seconds to the returned dict; returns (seconds, handles)."""
    seconds: dict[str, float] = defaultdict(float)
    handles = []
    for name, module in model.named_modules():
        part = next((label for pattern, label in PARTS if name.endswith(pattern)), None)
        if part is None:
            continue
        starts: list[float] = []
        handles.append(module.register_forward_pre_hook(lambda *_, starts=starts: starts.append(time.perf_counter())))
        handles.append(
            module.register_forward_hook(
                lambda *_, starts=starts, part=part: seconds.__setitem__(
                    part, seconds[part] + time.perf_counter() - starts.pop()
                )
            )
        )
    return seconds, handles


def cuda_profile(events, steps: int, args: argparse.Namespace) -> dict:
    """GPU busy time per step, the operators with the most GPU time, and the synchronizations per step
    (each makes the host wait for the GPU, so host and GPU work stop overlapping)."""
    by_gpu_time = sorted(events, key=lambda event: event.self_device_time_total, reverse=True)
    kernels_total = sum(event.self_device_time_total for event in events)
    syncs = sum(event.count for event in events if event.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize"))
    return {
        "device": torch.cuda.get_device_name(0),
        "bf16_autocast": args.bf16,
        "gpu_busy_ms_per_step": round(kernels_total / 1000 / steps, 2),
        "host_syncs_per_step": round(syncs / steps, 1),
        "operators_per_step": round(sum(event.count for event in events if event.key.startswith("aten::")) / steps),
        "top_operators_gpu_ms_per_step": {
            event.key: round(event.self_device_time_total / 1000 / steps, 3) for event in by_gpu_time[:10]
        },
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_seed(0)
    text_model_dir = resolve_text_model("minilm")
    tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
    processor = ProtoMolProcessor(tokenizer)
    table = load_table(dataset_name=args.dataset_name)
    smiles = table.smiles[: args.num_molecules]
    labels = table.labels[: args.num_molecules]
    model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(
        text_model_dir, problem_type=table.task_type, num_tasks=table.num_tasks, **json.loads(args.config)
    )
    features = processor(smiles=smiles, labels=labels)
    texts = processor.texts_for(smiles)
    cache = TextFeatureCache.build(texts, model.protomol, tokenizer, args.cache_dir, processor.max_text_length)
    collator = ProtoMolCachedTextCollator(cache, processor.collator)
    text_ids = cache.text_ids(texts)
    batches = [
        collator([{**features[i], "text_id": text_ids[i]} for i in range(start, start + args.batch_size)])
        for start in range(0, len(features) - args.batch_size + 1, args.batch_size)
    ]
    model.to(args.device)
    batches = [{name: tensor.to(args.device) for name, tensor in batch.items()} for batch in batches]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=8e-5)
    model.train()
    on_cuda = args.device.startswith("cuda")

    def step(batch):
        optimizer.zero_grad()
        with torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()

    for batch in batches[:2]:
        step(batch)
    seconds, handles = timed_parts(model)
    start = time.perf_counter()
    for index in range(args.steps):
        step(batches[index % len(batches)])
    total = elapsed_since(start, args.device)
    for handle in handles:
        handle.remove()
    profiled_steps = min(args.steps, 4)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with profile(activities=activities) as profiler:
        for index in range(profiled_steps):
            step(batches[index % len(batches)])
        if on_cuda:
            torch.cuda.synchronize()
    events = profiler.key_averages()
    operators = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)
    profiled_total = sum(event.self_cpu_time_total for event in operators)

    forward = {part: round(value / args.steps * 1000, 1) for part, value in sorted(seconds.items())}
    results = {
        "dataset": args.dataset_name,
        "config_changes": json.loads(args.config),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "torch_threads": torch.get_num_threads(),
        "ms_per_step": round(total / args.steps * 1000, 1),
        "forward_ms_per_step": forward,
        "rest_of_step_ms (backward, optimizer, glue)": round(total / args.steps * 1000 - sum(forward.values()), 1),
        "top_operators_self_cpu_share": {
            event.key: round(event.self_cpu_time_total / profiled_total, 3) for event in operators[:15]
        },
    }
    if on_cuda:
        results.update(cuda_profile(events, profiled_steps, args))
    report_results(results, args.output)
    return results


if __name__ == "__main__":
    main()
