"""Running a benchmark: each planned run trained in its own process from the repository root, and one JSON
record per finished run appended to RESULTS_DIR/CONFIG.jsonl (test and valid metric, best epoch, wall time,
peak memory, epochs, seed, git commit, hardware, command).

Runs already recorded (same config, dataset, split and seed) are skipped, so an interrupted benchmark resumes
where it stopped; a run interrupted mid-training resumes from its last checkpoint (one per epoch), with the
training time before that checkpoint counted in its record (`--from_scratch` starts such runs over).
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import REPO, display_path
from benchmarks.harness.configs import BenchmarkConfig, ConfigError, PlannedRun
from benchmarks.machine import describe_machine, git_commit

SYSTEM = "protomol"
OUTPUT_TAIL_CHARS = 4000


def record_key(record: dict) -> tuple:
    """What makes two records the same run."""
    return (record["system"], record["config"], record["dataset"], record["split"], record["seed"])


def read_jsonl(path: Path) -> list[dict]:
    """The records of one results file (none when it does not exist yet)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ConfigError(f"{path}, line {number}: not a JSON record ({error}); repair or delete it") from None
    return records


def append_record(path: Path, record: dict) -> None:
    """Append one record to a JSON-lines results file (and its folder, when it does not exist yet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")


def training_environment(processes: int) -> dict | None:
    """The environment of each of `processes` training processes on the machine (runs at a time x processes per
    run): with several, an equal share of the CPU cores each (OMP_NUM_THREADS, which torch reads), unless the
    caller set OMP_NUM_THREADS; None = inherit unchanged."""
    if processes == 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}


def delete_checkpoints(output_dir: Path) -> None:
    """Delete the Trainer's checkpoint-* folders in a run's folder."""
    for checkpoint in output_dir.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)


def interrupted_checkpoint(run: PlannedRun, from_scratch: bool = False) -> Path | None:
    """The last checkpoint an interrupted attempt at `run` left in its folder (None if there is none); with
    `from_scratch` those checkpoints are deleted instead, so the run starts over."""
    if not run.output_dir.is_dir():
        return None
    if from_scratch:
        delete_checkpoints(run.output_dir)
        return None
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(run.output_dir))
    return Path(last) if last else None


def run_one(
    run: PlannedRun,
    config_name: str,
    log_file: Path,
    jobs: int = 1,
    keep_checkpoints: bool = False,
    resume_from: Path | None = None,
) -> dict:
    """Train once, `jobs` runs sharing the machine, continuing from the checkpoint `resume_from` if given; returns
    the record to append (raises RuntimeError with the log tail when it fails). The Trainer's checkpoint folders
    of a finished run are deleted unless `keep_checkpoints`: the best model is saved in the run's folder, and each
    checkpoint holds the text model and the optimizer state again (about 0.2 GB; a full benchmark would otherwise
    fill a disk)."""
    run.output_dir.mkdir(parents=True, exist_ok=True)
    results_file = run.output_dir / "results.json"
    results_file.unlink(missing_ok=True)
    resume_arguments = ["--resume_from_checkpoint", str(resume_from)] if resume_from else []
    start = time.perf_counter()
    with log_file.open("a" if resume_from else "w") as log:
        process = subprocess.run(
            [*run.argv(sys.executable), *resume_arguments],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=training_environment(jobs * run.processes),
        )
    wall_s = time.perf_counter() - start
    if process.returncode != 0 or not results_file.is_file():
        tail = log_file.read_text(errors="replace")[-OUTPUT_TAIL_CHARS:]
        raise RuntimeError(f"exit code {process.returncode}, log {log_file}:\n{tail}")
    results = json.loads(results_file.read_text())
    # An earlier attempt's training up to the checkpoint resumed from (its start-up is not counted: a rerun
    # finds the text features cached).
    wall_s += results["resumed_train_s"]
    if not keep_checkpoints:
        delete_checkpoints(run.output_dir)
    metric = results["metric"]
    return {
        "system": SYSTEM,
        "config": config_name,
        "dataset": run.dataset,
        "split": run.split,
        "seed": run.seed,
        "metric": metric,
        "value": results["test"][metric],
        "valid_value": results["valid"][metric],
        "best_epoch": results["best_epoch"],
        "epochs_run": results["epochs_run"],
        "train_wall_s": results["train_wall_s"],
        "wall_s": round(wall_s, 1),
        "resumed_from": resume_from.name if resume_from else None,
        "peak_rss_mb": results["peak_memory_mb"],
        "git_commit": git_commit(),
        "epochs": run.epochs,
        "max_steps": run.max_steps,
        "overrides": run.overrides,
        "hardware": describe_machine(),
        "parallel_jobs": jobs,
        "processes": run.processes,
        "command": run.command,
    }


def run_benchmark(
    config: BenchmarkConfig,
    runs: list[PlannedRun],
    results_file: Path,
    jobs: int = 1,
    keep_checkpoints: bool = False,
    from_scratch: bool = False,
) -> int:
    """Run what `results_file` does not hold yet, `jobs` at a time, appending one line per finished run (under a
    lock, so lines never interleave); returns the failures."""
    done = {record_key(record) for record in read_jsonl(results_file)}
    results_file.parent.mkdir(parents=True, exist_ok=True)
    append_lock = threading.Lock()

    def execute(label: str, run: PlannedRun) -> bool:
        log_file = run.output_dir / "train.log"
        resume_from = interrupted_checkpoint(run, from_scratch)
        if resume_from:
            print(
                f"{label}: resuming from {resume_from.name}, left by an interrupted attempt "
                "(--from_scratch starts over), log appended to",
                display_path(log_file),
                flush=True,
            )
        else:
            print(f"{label}: running, log {display_path(log_file)}", flush=True)
        try:
            record = run_one(run, config.name, log_file, jobs, keep_checkpoints, resume_from)
        except RuntimeError as error:
            print(f"{label}: FAILED, {error}", file=sys.stderr, flush=True)
            return False
        with append_lock:
            append_record(results_file, record)
        print(f"{label}: test {record['metric']} {record['value']:.4f} in {record['wall_s']:.0f} s", flush=True)
        return True

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = []
        for number, run in enumerate(runs, start=1):
            label = f"[{number}/{len(runs)}] {config.name} / {run.dataset} / {run.split} (seed {run.seed})"
            if (SYSTEM, config.name, run.dataset, run.split, run.seed) in done:
                print(f"{label}: skipping, already in {display_path(results_file)}", flush=True)
            else:
                outcomes.append(pool.submit(execute, label, run))
    return sum(not outcome.result() for outcome in outcomes)


def load_records(results_dir: Path) -> list[dict]:
    """Every record of every results_dir/*.jsonl; a run recorded twice counts once (the later line)."""
    records = {}
    for path in sorted(results_dir.glob("*.jsonl")):
        for record in read_jsonl(path):
            records[record_key(record)] = record
    return [records[key] for key in sorted(records)]
