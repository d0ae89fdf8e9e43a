"""Measure prediction throughput from SMILES: `protomol predict` end to end, and where its time goes.

On the first --num_molecules SMILES of a bundled set (default: 10,000 of HIV), in one run:
  * `protomol predict` in a child process, CSV in and CSV out (start-up and model loading included):
    molecules/s and the child's peak RSS;
  * in this process, the stages of the same prediction: featurization (graph, description, tokens),
    the model (text model + ProtoMol), and the bare text model alone on the same tokens and batches
    (the floor: the text model is the dominant cost), also on batches in input order (more padding);
then prints a table and writes the figures and the machine details as JSON.

Without --model, an untrained model of the default configuration (all-MiniLM-L6-v2, hidden size 128)
is built: speed does not depend on the weights.

    python -m benchmarks.speed.inference --output benchmarks/results/inference.json
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.nn.attention import sdpa_kernel
from transformers import AutoModel, AutoProcessor, AutoTokenizer

from benchmarks.machine import describe_machine
from benchmarks.speed.measure import elapsed_since, report_results
from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.cli.common import DEFAULT_FEATURIZATION_WORKERS, add_device_options, positive_int
from protomol_hf.data import bundled_dataset_path
from protomol_hf.loading import resolve_text_model
from protomol_hf.modeling_protomol import ATTENTION_BACKENDS
from protomol_hf.prediction import featurize_rows, length_sorted_batches, predict_smiles


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Trained model folder (default: untrained default config).")
    parser.add_argument("--dataset_name", default="hiv", help="Bundled set whose SMILES are predicted.")
    parser.add_argument(
        "--num_molecules", type=positive_int, default=10_000, help="SMILES taken from the start of the set."
    )
    parser.add_argument("--batch_size", type=int, default=64, help="Molecules per model call (predict's default).")
    parser.add_argument(
        "--num_workers",
        type=int,
        default=DEFAULT_FEATURIZATION_WORKERS,
        help=f"Featurization processes (predict's --num_workers and its default, {DEFAULT_FEATURIZATION_WORKERS} here).",
    )
    add_device_options(parser)
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results.")
    return parser.parse_args(argv)


def build_default_model(directory: Path) -> None:
    """Save an untrained classifier of the default configuration and its processor to `directory`."""
    text_model_dir = resolve_text_model("minilm")
    model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(text_model_dir, num_tasks=1)
    model.save_pretrained(directory)
    ProtoMolProcessor(AutoTokenizer.from_pretrained(text_model_dir)).save_pretrained(directory)


def run_cli_predict(model_dir: str, csv: Path, batch_size: int, num_workers: int, device: str, dtype: str) -> dict:
    """`protomol predict` in a child process: wall seconds and the child's peak RSS."""
    command = [sys.executable, "-m", "protomol_hf.cli", "predict", "--model", model_dir, "--input", str(csv)]
    command += ["--output", str(csv.with_name("predictions.csv")), "--batch_size", str(batch_size)]
    command += ["--num_workers", str(num_workers), "--device", device, "--dtype", dtype]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"protomol predict failed:\n{result.stderr[-3000:]}")
    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "summary": result.stdout.strip().splitlines()[-1], "peak_rss_mb": peak_rss_mb}


@torch.no_grad()
def time_stages(model_dir: str, smiles: list[str], batch_size: int, num_workers: int, device: str, dtype: str) -> dict:
    """Seconds of each prediction stage in this process on the same molecules and batches."""
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True)
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=True)
    start = time.perf_counter()
    features, errors = featurize_rows(processor, smiles, num_workers=num_workers)
    featurize_s = time.perf_counter() - start

    valid = [item for item in features if item is not None]
    # The batches predict_smiles makes (similar lengths together) and, for comparison, batches in input order.
    batches = [
        processor.collator([features[row] for row in rows]) for rows in length_sorted_batches(features, batch_size)
    ]
    input_order_batches = [processor.collator(valid[i : i + batch_size]) for i in range(0, len(valid), batch_size)]
    batches = [{name: tensor.to(device) for name, tensor in batch.items()} for batch in batches]
    input_order_batches = [{name: tensor.to(device) for name, tensor in batch.items()} for batch in input_order_batches]
    model(**batches[0])  # warm-up: CUDA kernels load and the allocator fills on the first call
    start = time.perf_counter()
    for batch in batches:
        model(**batch)
    model_s = elapsed_since(start, device)

    text_model = model.protomol.text_model
    text_model_s = {}
    # The attention kernels ProtoMol allows, so the floor is measured on the same footing (cuDNN's per-shape
    # plan building would otherwise dominate the first pass over new batch shapes on a GPU).
    with sdpa_kernel(ATTENTION_BACKENDS):
        for name, batch_list in (("length_sorted", batches), ("input_order", input_order_batches)):
            start = time.perf_counter()
            for batch in batch_list:
                text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            text_model_s[name] = elapsed_since(start, device)

    start = time.perf_counter()
    predict_smiles(model, processor, smiles, batch_size=batch_size, num_workers=num_workers)
    predict_s = elapsed_since(start, device)
    return {
        "valid_molecules": len(valid),
        "skipped_molecules": sum(error is not None for error in errors),
        # Unrounded: the rates are computed from them (a short stage rounded to 0.01 s would skew or zero them).
        "featurize_s": featurize_s,
        "model_s": model_s,
        "bare_text_model_s": text_model_s["length_sorted"],
        "bare_text_model_input_order_s": text_model_s["input_order"],
        "predict_smiles_s": predict_s,
        "mean_tokens_per_molecule": round(sum(len(item["input_ids"]) for item in valid) / len(valid), 1),
        "padded_tokens_per_molecule": round(sum(b["attention_mask"].numel() for b in batches) / len(valid), 1),
        "padded_tokens_per_molecule_input_order": round(
            sum(b["attention_mask"].numel() for b in input_order_batches) / len(valid), 1
        ),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    # The CSV's own rows, invalid ones included, as a user's file would have them.
    smiles = pd.read_csv(bundled_dataset_path(args.dataset_name), usecols=["smiles"], dtype=str, keep_default_na=False)
    smiles = smiles["smiles"].tolist()[: args.num_molecules]
    torch_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = args.model
        if model_dir is None:
            model_dir = str(Path(scratch) / "default_model")
            build_default_model(Path(model_dir))
        csv = Path(scratch) / "molecules.csv"
        pd.DataFrame({"smiles": smiles}).to_csv(csv, index=False)
        cli = run_cli_predict(model_dir, csv, args.batch_size, args.num_workers, args.device, args.dtype)
        stages = time_stages(model_dir, smiles, args.batch_size, args.num_workers, args.device, args.dtype)

    count = len(smiles)
    rate = {
        "protomol_predict_cli": count / cli["seconds"],
        "predict_smiles_in_process": count / stages["predict_smiles_s"],
        "featurization": count / stages["featurize_s"],
        "model_forward": stages["valid_molecules"] / stages["model_s"],
        "bare_text_model": stages["valid_molecules"] / stages["bare_text_model_s"],
        "bare_text_model_input_order": stages["valid_molecules"] / stages["bare_text_model_input_order_s"],
    }
    results = {
        "dataset": args.dataset_name,
        "num_molecules": count,
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "device": args.device,
        "dtype": args.dtype,
        "model": args.model or "untrained default configuration (MiniLM-L6, hidden 128)",
        "cli": {**cli, "seconds": round(cli["seconds"], 3)},
        "stages": {name: round(value, 3) if isinstance(value, float) else value for name, value in stages.items()},
        "molecules_per_s": {name: round(value, 1) for name, value in rate.items()},
        "predict_vs_bare_text_model": round(rate["predict_smiles_in_process"] / rate["bare_text_model"], 3),
        "machine": {**describe_machine(args.device), "torch_threads": torch_threads},
    }
    report_results(results, args.output)
    return results


if __name__ == "__main__":
    main()
