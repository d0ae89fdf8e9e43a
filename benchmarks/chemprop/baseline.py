"""Benchmark chemprop v2 with its default settings on one of our fixed splits: accuracy and speed.

The baseline for the ProtoMol results of the benchmark harness (benchmarks.harness), on the same rows. For one bundled set,
split and seed this
  * writes the split's rows (SMILES and label columns, train then valid then test) to data.csv and
    a chemprop splits file (splits.json: [{"train": [...], "val": [...], "test": [...]}] over them);
  * runs `chemprop train` with chemprop's defaults except the task type (classification or regression,
    from the dataset spec), the split, the seed (--data-seed and --pytorch-seed) and --accelerator cpu,
    through benchmarks/chemprop/train_wrapper.py, which times the training, checkpoints every epoch and can resume: a
    run interrupted mid-training (its folder holds train/model_0/checkpoints/epoch_end.ckpt, or only
    chemprop's last.ckpt if chemprop ran without the wrapper) goes on from that checkpoint, unless
    --from_scratch;
  * runs `chemprop predict` with the saved model on the validation SMILES and, timed, on the test SMILES;
  * scores chemprop's own test predictions (test_predictions.csv) and the validation predictions with
    protomol_hf.metrics.MoleculeNetMetric (ROC-AUC or RMSE), as the ProtoMol runs are scored;
  * appends one JSON line to --results and prints it.

Chemprop is called as a subprocess from its own virtual environment (see
benchmarks/chemprop_requirements.txt). Recorded figures:
  * wall_s: `chemprop train` end to end (start-up, featurization, training, test prediction); for a resumed
    run, plus the training time before the checkpoint (resumed_train_s), as the harness counts it;
  * seconds_per_epoch: from chemprop logging the model (just before fitting) to its test results,
    timed on its streamed output, divided by the epochs run (validation and test prediction included);
    for a resumed run, the training time before the checkpoint and the epochs before it count too;
  * resumed_from: "epoch N" when the run went on from the checkpoint of its N-th epoch, else null;
  * best_epoch: the 1-based epoch of the checkpoint chemprop kept (by its default tracking metric,
    the validation loss), as in the ProtoMol records; epochs: the epochs run;
  * predict_molecules_per_s: test molecules over the `chemprop predict` wall time (start-up included);
  * peak_rss_mb: the largest peak resident memory of the chemprop processes.

    python -m benchmarks.chemprop.baseline --dataset_name bace --split random_0
    python -m benchmarks.chemprop.baseline --dataset_name muv --split random_0   # after an interruption: resumes
    python -m benchmarks.chemprop.baseline --epochs 2 --results /tmp/chemprop_smoke.jsonl --output_dir /tmp/chemprop_smoke
"""

import argparse
import bisect
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness.runner import append_record
from benchmarks.machine import describe_machine, git_commit
from protomol_hf.data import bundled_dataset_path, bundled_split_path, get_dataset_spec, read_split_json
from protomol_hf.metrics import MoleculeNetMetric, main_metric

# chemprop 2.x's default --warmup-epochs; it refuses to train for that many epochs or fewer.
CHEMPROP_WARMUP_EPOCHS = 2
FIT_START_MARKER = b" - MPNN("
FIT_END_MARKER = b"Test Set results"
TRAIN_WRAPPER = Path(__file__).with_name("train_wrapper.py")
EPOCH_CHECKPOINT = "epoch_end.ckpt"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="bace", help="Bundled dataset (default: bace).")
    parser.add_argument(
        "--split",
        default="random_0",
        help="Bundled split of the dataset, src/protomol_hf/datasets/splits/<dataset>/<split>.json (default: random_0).",
    )
    parser.add_argument(
        "--chemprop",
        default=".venv-chemprop/bin/chemprop",
        help="The chemprop executable (default: .venv-chemprop/bin/chemprop, made by `make chemprop-venv`).",
    )
    parser.add_argument(
        "--output_dir",
        type=Path,
        default=Path("runs/chemprop"),
        help="Runs go to OUTPUT_DIR/<dataset>/<split>/seed_<seed>; its train/ folder is replaced unless it "
        "holds the checkpoint of an interrupted training, which is resumed (default: runs/chemprop).",
    )
    parser.add_argument(
        "--from_scratch",
        action="store_true",
        help="Start over even when an interrupted training of this dataset, split and seed left a checkpoint.",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/results/chemprop.jsonl"),
        help="JSON-lines file the record is appended to (default: benchmarks/results/chemprop.jsonl).",
    )
    parser.add_argument("--seed", type=int, default=0, help="chemprop's --data-seed and --pytorch-seed (default: 0).")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"Training epochs (default: chemprop's own, 50). At {CHEMPROP_WARMUP_EPOCHS} or fewer, --warmup-epochs "
        "EPOCHS-1 is passed too, since chemprop needs more epochs than warmup epochs.",
    )
    return parser.parse_args(argv)


def read_split(dataset_name: str, split: str) -> dict[str, list[int]]:
    """The 0-based CSV row indices of the train/valid/test parts of a bundled split file."""
    content = read_split_json(bundled_split_path(dataset_name, split))
    return {part: content[part] for part in ("train", "valid", "test")}


def chemprop_version(chemprop: str) -> str:
    """The version `chemprop --version` reports ("chemprop 2.3.1" -> "2.3.1")."""
    result = subprocess.run([chemprop, "--version"], capture_output=True, text=True, check=True)
    return result.stdout.split()[-1]


def interrupted_checkpoint(model_dir: Path) -> Path | None:
    """The checkpoint to resume the interrupted training in `model_dir` from, or None if it finished (it has written
    best.pt) or has none: train_wrapper.py's every-epoch checkpoint, else chemprop's own last.ckpt (saved
    only when the validation loss improved)."""
    if (model_dir / "best.pt").exists():
        return None
    candidates = (model_dir / "checkpoints" / name for name in (EPOCH_CHECKPOINT, "last.ckpt"))
    return next((path for path in candidates if path.is_file()), None)


def unclocked_train_s(model_dir: Path, checkpoint: Path) -> float:
    """The training seconds before `checkpoint` when chemprop saved it without train_wrapper.py's clock,
    i.e. in a first attempt run with chemprop's own command line: from that attempt's start of training (when
    its logger wrote trainer_logs/version_0/hparams.yaml) to the checkpoint's last modification."""
    started = (model_dir / "trainer_logs" / "version_0" / "hparams.yaml").stat().st_mtime
    return checkpoint.stat().st_mtime - started


def run_timed(command: list[str], log_path: Path, append: bool = False) -> tuple[float, bytes, list[int], list[float]]:
    """Run `command`, its merged stdout/stderr streamed to `log_path` (appended to with `append`).

    Returns the wall seconds, the output, and per chunk read its end offset in the output and the
    seconds since the start at which it arrived (to time the lines chemprop prints).
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    output, chunk_ends, chunk_times = bytearray(), [], []
    start = time.perf_counter()
    with (
        log_path.open("ab" if append else "wb") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as process,
    ):
        while chunk := process.stdout.read1(1 << 16):
            chunk_times.append(time.perf_counter() - start)
            output += chunk
            chunk_ends.append(len(output))
            log.write(chunk)
    wall_s = time.perf_counter() - start
    if process.returncode != 0:
        tail = output[-3000:].decode(errors="replace")
        raise RuntimeError(f"{shlex.join(command)} failed (exit code {process.returncode}):\n{tail}")
    return wall_s, bytes(output), chunk_ends, chunk_times


def arrival_time(marker: bytes, output: bytes, chunk_ends: list[int], chunk_times: list[float]) -> float:
    """Seconds after the start at which `marker` first appeared in the output."""
    position = output.find(marker)
    if position < 0:
        raise RuntimeError(f"{marker.decode()!r} not found in chemprop's output")
    return chunk_times[bisect.bisect_right(chunk_ends, position + len(marker) - 1)]


def predict(chemprop: str, model: Path, smiles: list[str], folder: Path, name: str) -> tuple[pd.DataFrame, float]:
    """`chemprop predict` on `smiles`, through folder/<name>_smiles.csv and <name>_predictions.csv.

    Returns the predictions and the wall seconds.
    """
    input_csv, output_csv = folder / f"{name}_smiles.csv", folder / f"{name}_predictions.csv"
    pd.DataFrame({"smiles": smiles}).to_csv(input_csv, index=False)
    command = [chemprop, "predict", "-i", str(input_csv), "-o", str(output_csv), "--model-paths", str(model)]
    command += ["-s", "smiles", "--accelerator", "cpu"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}")
    return pd.read_csv(output_csv, dtype={"smiles": str}), seconds


def score(spec, task_names: list[str], predictions: pd.DataFrame, rows: pd.DataFrame) -> float:
    """Our metric (ROC-AUC or RMSE) of chemprop's predictions for `rows`, in the same order."""
    if predictions["smiles"].tolist() != rows["smiles"].tolist():
        raise RuntimeError("chemprop's predictions are not in the order of the rows given to it")
    metric = MoleculeNetMetric(task_type=spec.task_type, task_names=task_names)
    scores = metric.compute(
        predictions=predictions[task_names].to_numpy(np.float64), references=rows[task_names].to_numpy(np.float64)
    )
    return scores[main_metric(spec.task_type)[0]]


def main(argv=None) -> dict:
    args = parse_args(argv)
    spec = get_dataset_spec(args.dataset_name)
    table = pd.read_csv(bundled_dataset_path(spec.name), dtype={spec.smiles_column: str})
    table = table.rename(columns={spec.smiles_column: "smiles"})
    task_names = list(spec.label_columns or [column for column in table.columns if column != "smiles"])
    split = read_split(spec.name, args.split)
    parts = {part: table.iloc[rows][["smiles", *task_names]].reset_index(drop=True) for part, rows in split.items()}

    run_dir = args.output_dir / spec.name / args.split / f"seed_{args.seed}"
    train_dir, clock_file = run_dir / "train", run_dir / "clock.json"
    model_dir = train_dir / "model_0"
    resume_from = None if args.from_scratch else interrupted_checkpoint(model_dir)
    if resume_from is None:
        shutil.rmtree(train_dir, ignore_errors=True)
    else:
        # Taken now: the resumed training overwrites the checkpoint.
        unclocked_s = unclocked_train_s(model_dir, resume_from)
        print(
            f"resuming chemprop from {resume_from}, left by an interrupted attempt (--from_scratch starts over); "
            f"log appended to {run_dir / 'train.log'}",
            flush=True,
        )
    clock_file.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_csv, splits_json = run_dir / "data.csv", run_dir / "splits.json"
    pd.concat(parts.values()).to_csv(data_csv, index=False)
    num_train, num_valid, num_test = (len(parts[part]) for part in ("train", "valid", "test"))
    bounds = np.cumsum([0, num_train, num_valid, num_test]).tolist()
    splits = {
        "train": range(bounds[0], bounds[1]),
        "val": range(bounds[1], bounds[2]),
        "test": range(bounds[2], bounds[3]),
    }
    splits_json.write_text(json.dumps([{part: list(indices) for part, indices in splits.items()}]))

    version = chemprop_version(args.chemprop)
    chemprop_python = str(Path(args.chemprop).with_name("python"))
    command = [chemprop_python, str(TRAIN_WRAPPER), "--clock_file", str(clock_file)]
    command += ["--epoch_checkpoint", str(model_dir / "checkpoints" / EPOCH_CHECKPOINT)]
    if resume_from:
        command += ["--resume_from", str(resume_from), "--unclocked_train_s", str(unclocked_s)]
    command += ["--", "-i", str(data_csv), "--splits-file", str(splits_json), "-s", "smiles"]
    command += ["--target-columns", *task_names, "-t", spec.task_type, "-o", str(train_dir), "--accelerator", "cpu"]
    command += ["--data-seed", str(args.seed), "--pytorch-seed", str(args.seed)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
        if args.epochs <= CHEMPROP_WARMUP_EPOCHS:
            command += ["--warmup-epochs", str(args.epochs - 1)]
    wall_s, output, chunk_ends, chunk_times = run_timed(command, run_dir / "train.log", append=bool(resume_from))

    clock = json.loads(clock_file.read_text())
    resumed_train_s = clock["resumed_train_s"] or 0.0
    fit_s = arrival_time(FIT_END_MARKER, output, chunk_ends, chunk_times) - arrival_time(
        FIT_START_MARKER, output, chunk_ends, chunk_times
    )
    (checkpoint,) = (model_dir / "checkpoints").glob("best-epoch=*")
    best_epoch = int(re.match(r"best-epoch=(\d+)-", checkpoint.name).group(1)) + 1

    test_value = score(
        spec, task_names, pd.read_csv(model_dir / "test_predictions.csv", dtype={"smiles": str}), parts["test"]
    )
    valid_predictions, _ = predict(
        args.chemprop, model_dir / "best.pt", parts["valid"]["smiles"].tolist(), run_dir, "valid"
    )
    valid_value = score(spec, task_names, valid_predictions, parts["valid"])
    _, predict_s = predict(args.chemprop, model_dir / "best.pt", parts["test"]["smiles"].tolist(), run_dir, "test")

    record = {
        "system": "chemprop",
        "config": "chemprop_defaults",
        "dataset": spec.name,
        "split": args.split,
        "seed": args.seed,
        "metric": main_metric(spec.task_type)[0],
        "value": test_value,
        "valid_value": valid_value,
        "best_epoch": best_epoch,
        "epochs": clock["epochs"],
        "wall_s": round(wall_s + resumed_train_s, 1),
        "seconds_per_epoch": round((resumed_train_s + fit_s) / clock["epochs"], 2),
        "resumed_from": f"epoch {clock['resumed_epochs']}" if resume_from else None,
        "resumed_train_s": round(resumed_train_s, 1),
        "predict_molecules_per_s": round(num_test / predict_s, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "chemprop_version": version,
        # How to reproduce the record (docs/benchmarks.md lists it), and what it ran.
        "command": f"python -m benchmarks.chemprop.baseline --dataset_name {spec.name} --split {args.split} "
        f"--seed {args.seed}" + (f" --epochs {args.epochs}" if args.epochs is not None else ""),
        "chemprop_command": shlex.join(command),
        # The fields the harness's report renders for every record, so both systems share docs/benchmarks.md.
        "max_steps": -1,
        "overrides": {},
        "hardware": describe_machine(),
        "git_commit": git_commit(),
    }
    append_record(args.results, record)
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
