"""ProtoMol's speed against its floor and its peers, in one run on one machine, as ratios.

Runs, one after another (each in its own process, so timings and peak memory do not mix):
  1. featurization: `benchmarks.speed.featurization` (HIV SMILES; ours vs torch_geometric's from_smiles);
  2. text-feature caching: `benchmarks.speed.text_cache` per dataset (cache build vs the bare text model);
  3. prediction from SMILES: `benchmarks.speed.inference` (10,000 HIV molecules; vs the bare text model), in
     each of --inference_dtypes;
  4. training: the benchmark harness, each of --train_configs (default: the default config) per
     --train_datasets on each of --train_splits (default: random_0) (seconds per epoch, time to the best
     validation epoch, peak RSS);
  5. chemprop v2 defaults on the same splits (`benchmarks.chemprop.baseline`, its own virtual environment), when
     its executable exists, and `chemprop predict` with the first model on the molecules of step 3 that
     RDKit parses (chemprop stops at an unparsable SMILES);
then writes every script's JSON into --output_dir and the ratios into OUTPUT_DIR/speed.json, and prints them.

Time to the best validation epoch is seconds per epoch (training wall time over epochs run) times the best
epoch, for both systems. Where the best epoch lands varies much between splits (chemprop's BACE best epochs on
random_0..2 in one run: 25, 39, 50), so with several --train_splits every figure is the mean over them, each
split's figures listed as well, and the ratios compare the means. The harness skips runs already recorded, so
a ProtoMol training record in --output_dir is reused: give an empty folder to time training anew (e.g. on
another machine); --keep_measured also keeps the other steps' figures. On 2 CPU cores (AMD EPYC) the first
example took 30 minutes and the last (adding one config to benchmarks/results/speed_2_heads) 6:

    python -m benchmarks.speed.against_chemprop --cache_datasets bace --train_configs default bf16 \
        --inference_dtypes float32 bfloat16
    python -m benchmarks.speed.against_chemprop   # float32 only; also caches HIV's texts (step 2)
    python -m benchmarks.speed.against_chemprop --quick --output_dir /tmp/speed   # minutes: a smoke run of every step
    python -m benchmarks.speed.against_chemprop --keep_measured --cache_datasets bace \
        --train_splits random_0 random_1 random_2 --train_configs small_fused_attention --inference_dtypes float32 \
        --output_dir benchmarks/results/speed_2_heads --runs_dir runs/speed_2_heads
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger

from benchmarks import REPO
from benchmarks.chemprop.baseline import predict as chemprop_predict
from benchmarks.harness.runner import read_jsonl
from benchmarks.machine import describe_machine, git_commit
from benchmarks.speed.measure import report_results
from protomol_hf.data import bundled_dataset_path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cache_datasets", nargs="+", default=["bace", "hiv"], help="Sets whose descriptions are cached (step 2)."
    )
    parser.add_argument(
        "--train_datasets", nargs="*", default=["bace"], help="Sets trained in steps 4 and 5 (none: skip them)."
    )
    parser.add_argument(
        "--train_splits",
        nargs="+",
        default=["random_0"],
        help="Fixed splits trained on in steps 4 and 5; with several, the training figures are means over them.",
    )
    parser.add_argument(
        "--train_configs",
        nargs="+",
        default=["default"],
        help="Benchmark configs trained in step 4 (names in benchmarks/configs/), each compared with chemprop.",
    )
    parser.add_argument(
        "--inference_dtypes",
        nargs="+",
        default=["float32"],
        choices=["float32", "bfloat16"],
        help="Model dtypes that step 3 predicts in (`protomol predict --dtype`), each compared with chemprop.",
    )
    parser.add_argument(
        "--chemprop",
        default=".venv-chemprop/bin/chemprop",
        help="chemprop executable (`make chemprop-venv`); chemprop is skipped, and said so, when it is missing.",
    )
    parser.add_argument("--output_dir", type=Path, default=Path("benchmarks/results/speed"), help="Results folder.")
    parser.add_argument(
        "--runs_dir", type=Path, default=Path("runs/bench_speed"), help="Trained models and chemprop's files."
    )
    parser.add_argument(
        "--keep_measured",
        action="store_true",
        help="Keep the figures of steps 1-3 and chemprop's runs already in --output_dir instead of measuring them "
        "again (ProtoMol's recorded training runs are always kept), e.g. to add splits or configs to a run.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Tiny sizes (200 molecules, 2 training epochs): checks the pipeline only."
    )
    return parser.parse_args(argv)


def run_step(name: str, command: list[str], measured: bool = False) -> None:
    """Run one benchmark module, `command` being its `python` arguments (unless its figures are `measured`
    already); stop with its output tail when it fails."""
    if measured:
        print(f"== {name}: kept the figures already in the output folder", flush=True)
        return
    print(f"== {name}: {' '.join(command)}", flush=True)
    result = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{name} failed (exit code {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")


def training_speed(record: dict) -> dict:
    """Seconds per epoch, time to the best validation epoch and test metric of a ProtoMol or chemprop record."""
    if record["system"] == "chemprop":
        seconds_per_epoch = record["seconds_per_epoch"]
    else:
        seconds_per_epoch = record["train_wall_s"] / record["epochs_run"]
    return {
        "seconds_per_epoch": round(seconds_per_epoch, 2),
        "best_epoch": record["best_epoch"],
        "time_to_best_validation_s": round(seconds_per_epoch * record["best_epoch"], 1),
        "wall_s": record["wall_s"],
        "peak_rss_mb": record["peak_rss_mb"],
        "test_" + record["metric"]: round(record["value"], 4),
    }


def inference_file_name(dtype: str) -> str:
    """Step 3's output file: inference.json for float32, inference_<dtype>.json otherwise."""
    return "inference.json" if dtype == "float32" else f"inference_{dtype}.json"


def newest_records(results_file: Path, dataset: str, splits: list[str]) -> list[dict]:
    """The last record of `dataset` on each of `splits` in a results file (the files accumulate over runs); empty
    unless every split has one."""
    records = {record["split"]: record for record in read_jsonl(results_file) if record["dataset"] == dataset}
    return [records[split] for split in splits] if all(split in records for split in splits) else []


def mean_training_speed(records: list[dict]) -> dict:
    """`training_speed` of one record, or the mean of each figure over several splits' records, with each
    split's figures under "per_split"."""
    per_split = {record["split"]: training_speed(record) for record in records}
    if len(per_split) == 1:
        return per_split[records[0]["split"]]
    figures = next(iter(per_split.values()))
    mean = {
        key: round(
            sum(split[key] for split in per_split.values()) / len(per_split), 4 if key.startswith("test_") else 2
        )
        for key in figures
    }
    return {**mean, "per_split": per_split}


def chemprop_inference(chemprop: str, model: Path, num_molecules: int, folder: Path) -> dict:
    """`chemprop predict` (start-up included) on the parsable ones of the first HIV rows that step 3 predicts."""
    RDLogger.DisableLog("rdApp.*")
    smiles = pd.read_csv(bundled_dataset_path("hiv"), usecols=["smiles"], dtype=str, keep_default_na=False)
    parsable = [text for text in smiles["smiles"].tolist()[:num_molecules] if Chem.MolFromSmiles(text) is not None]
    _, seconds = chemprop_predict(chemprop, model, parsable, folder, "hiv")
    return {
        "molecules": len(parsable),
        "seconds": round(seconds, 2),
        "molecules_per_s": round(len(parsable) / seconds, 1),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    out, runs = args.output_dir.resolve(), args.runs_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    size = ["--num_molecules", "200"] if args.quick else []

    def measured(output: Path) -> bool:
        return args.keep_measured and output.exists()

    output = out / "featurization.json"
    run_step(
        "featurization",
        ["-m", "benchmarks.speed.featurization", "--output", str(output)] + (["--limit", "200"] if args.quick else []),
        measured(output),
    )
    for dataset in args.cache_datasets:
        output = out / f"text_cache_{dataset}.json"
        run_step(f"text cache {dataset}", ["-m", "benchmarks.speed.text_cache", "--dataset_name", dataset, *size,
                                           "--output", str(output)], measured(output))  # fmt: skip
    for dtype in args.inference_dtypes:
        output = out / inference_file_name(dtype)
        run_step(f"inference, {dtype}", ["-m", "benchmarks.speed.inference", *size, "--dtype", dtype,
                 "--output", str(output)], measured(output))  # fmt: skip
    chemprop_found = Path(args.chemprop).is_file()
    for dataset in args.train_datasets:
        train_args = ["--", "--num_train_epochs", "2"] if args.quick else []
        for config in args.train_configs:
            run_step(f"ProtoMol training {dataset}, {config}", ["-m", "benchmarks.harness", "--config", config,
                     "--datasets", dataset, "--splits", *args.train_splits, "--results_dir", str(out), "--output_root",
                     str(runs), "--docs_file", str(runs / "benchmarks.md"), *train_args])  # fmt: skip
        for split in args.train_splits if chemprop_found else []:
            run_step(f"chemprop {dataset} {split}", ["-m", "benchmarks.chemprop.baseline", "--dataset_name", dataset,
                     "--split", split, "--chemprop", args.chemprop, "--results", str(out / "chemprop.jsonl"),
                     "--output_dir", str(runs / "chemprop"), *(["--epochs", "2"] if args.quick else [])],
                     args.keep_measured and bool(newest_records(out / "chemprop.jsonl", dataset, [split])))  # fmt: skip

    inference = {dtype: json.loads((out / inference_file_name(dtype)).read_text()) for dtype in args.inference_dtypes}
    featurization = json.loads((out / "featurization.json").read_text())
    summary: dict = {
        "git_commit": git_commit(),
        "hardware": describe_machine(),
        "quick": args.quick,
        "featurization_per_core_vs_from_smiles": featurization["speedup_per_core_vs_from_smiles"],
        "prediction_vs_bare_text_model": {
            dtype: rates["predict_vs_bare_text_model"] for dtype, rates in inference.items()
        },
        "text_cache": {
            dataset: json.loads((out / f"text_cache_{dataset}.json").read_text())["texts_per_s"]
            for dataset in args.cache_datasets
        },
        "training": {},
        "chemprop": "ran" if chemprop_found else f"skipped: {args.chemprop} not found (make chemprop-venv)",
    }
    for dataset in args.train_datasets:
        entry: dict = {"splits": args.train_splits, "protomol": {}, "protomol_over_chemprop": {}}
        chemprop_records = newest_records(out / "chemprop.jsonl", dataset, args.train_splits)
        theirs = mean_training_speed(chemprop_records) if chemprop_records else None
        if theirs:
            entry["chemprop"] = theirs
        for config in args.train_configs:
            records = newest_records(out / f"{config}.jsonl", dataset, args.train_splits)
            if not records:
                continue
            ours = entry["protomol"][config] = mean_training_speed(records)
            if theirs:
                entry["protomol_over_chemprop"][config] = {
                    "time_to_best_validation": round(ours["time_to_best_validation_s"] / theirs["time_to_best_validation_s"], 2),
                    "seconds_per_epoch": round(ours["seconds_per_epoch"] / theirs["seconds_per_epoch"], 2),
                }  # fmt: skip
        summary["training"][dataset] = entry
    predict_rates = {dtype: rates["molecules_per_s"]["protomol_predict_cli"] for dtype, rates in inference.items()}
    summary["inference"] = {"protomol_predict_molecules_per_s": predict_rates}
    if chemprop_found and args.train_datasets:
        first_run = runs / "chemprop" / args.train_datasets[0] / args.train_splits[0] / "seed_0"
        model = first_run / "train" / "model_0" / "best.pt"
        if not model.is_file():
            sys.exit(f"chemprop's model {model} is missing: give the --runs_dir of the run that trained it.")
        num_molecules = inference[args.inference_dtypes[0]]["num_molecules"]
        chemprop_predict = chemprop_inference(args.chemprop, model, num_molecules, runs / "chemprop")
        summary["inference"]["chemprop_predict"] = chemprop_predict
        summary["inference"]["protomol_over_chemprop"] = {
            dtype: round(rate / chemprop_predict["molecules_per_s"], 3) for dtype, rate in predict_rates.items()
        }
    report_results(summary, out / "speed.json")
    return summary


if __name__ == "__main__":
    main()
