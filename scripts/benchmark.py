#!/usr/bin/env python
"""Benchmark ProtoMol on the fixed MoleculeNet splits and render docs/benchmarks.md from the results.

For every (dataset, split) this runs, in its own process and from the repository root,

    python scripts/train.py --dataset_name D --split_file S --output_dir OUTPUT_ROOT/CONFIG/D/S \\
        <options of the config> <extra train arguments>

then appends one JSON line (test and valid metric, best epoch, wall time, peak memory, epochs, seed,
git commit, hardware, command) to RESULTS_DIR/CONFIG.jsonl. Runs already recorded there (same config,
dataset, split and seed) are skipped, so an interrupted benchmark resumes where it stopped; a run
interrupted mid-training resumes from its last checkpoint (one per epoch), with the training time before
that checkpoint counted in its record (`--from_scratch` starts such runs over). A failed run prints the
tail of its log and the others go on; the exit code is then 1. Extra train arguments are whatever follows
`--`: they come last, so they win over the config's options, and relative paths in them are taken from
the repository root.

A config is a JSON object of scripts/train.py options, e.g. {"num_train_epochs": 30}, plus three
optional keys: "description", "extends" (a config whose options this one starts from) and
"per_dataset" ({"hiv": {"num_train_epochs": 10}}: options for one dataset only). Shipped configs are
in benchmarks/configs/ (default and the paper's ablations); every option is checked against
scripts/train.py before anything runs.

Examples:
    python scripts/benchmark.py --config default --datasets bace bbbp
    python scripts/benchmark.py --config no_alignment --datasets bace --splits random_0 -- --seed 1
    python scripts/benchmark.py --config default --datasets esol freesolv --jobs 2   # 2 runs at a time
    python scripts/benchmark.py --config default --datasets muv --splits random_0 --processes 2   # DDP
    python scripts/benchmark.py --render_only
"""

import argparse
import difflib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "benchmarks" / "configs"
TRAIN_SCRIPT = "scripts/train.py"
# How a run with --processes N > 1 is started: data-parallel over N processes (gloo on CPU, NCCL on GPUs).
DDP_LAUNCH = ("-m", "accelerate.commands.launch", "--config_file", "configs/accelerate_ddp.yaml", "--num_processes")
DEFAULT_RESULTS_DIR = REPO / "benchmarks" / "results"
DEFAULT_OUTPUT_ROOT = REPO / "runs" / "benchmark"
DEFAULT_DOCS_FILE = REPO / "docs" / "benchmarks.md"
DEFAULT_SPLITS = ("random_0", "random_1", "random_2", "scaffold")
SYSTEM = "protomol"
# Config keys that are not scripts/train.py options.
CONFIG_KEYS = ("description", "extends", "per_dataset")
# Options the harness sets for each run.
HARNESS_OPTIONS = ("dataset_name", "split_file", "output_dir")
# The options a prototype-count config changes (rendered as one table against N).
PROTOTYPE_OPTIONS = {"num_prototypes_per_class", "prototype_top_k"}
OUTPUT_TAIL_CHARS = 4000

# What the paper reports; the harness never measured these.
PAPER_FIGURES = (
    {
        "dataset": "bace",
        "metric": "roc_auc",
        "figure": "0.914 ± 0.003",
        "source": "ProtoMol paper (arXiv 2510.16824), via a third-party leaderboard",
    },
    {
        "dataset": "regression (dataset not stated)",
        "metric": "rmse",
        "figure": "0.629",
        "source": "ProtoMol paper (arXiv 2510.16824)",
        "instead_of_runs": "the paper does not name the set; see esol, freesolv, lipo and qm7 below",
    },
)
PAPER_ABLATION_CLAIMS = (
    "Without cross-attention, without alignment, without the contrastive loss: each is worse than the full model.",
    "Prototype count N in {3, 5, 7}: performance is hump-shaped in N.",
)


class ConfigError(ValueError):
    """A benchmark config or extra argument that scripts/train.py would not accept."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """Training options shared by every run of a benchmark, and per-dataset changes to them."""

    name: str
    description: str
    options: dict
    per_dataset: dict = field(default_factory=dict)

    def options_for(self, dataset: str) -> dict:
        return {**self.options, **self.per_dataset.get(dataset, {})}


@dataclass(frozen=True)
class PlannedRun:
    """One scripts/train.py invocation of the benchmark, with the values it is recorded under."""

    dataset: str
    split: str
    seed: int
    epochs: float
    max_steps: int
    overrides: dict
    output_dir: Path
    train_arguments: list
    processes: int = 1

    def argv(self, python: str) -> list[str]:
        """The command line that trains, with `python` as the interpreter; launched data-parallel over
        `processes` processes when there are several."""
        launch = [*DDP_LAUNCH, str(self.processes)] if self.processes > 1 else []
        return [python, *launch, TRAIN_SCRIPT, *self.train_arguments]

    @property
    def command(self) -> str:
        """The command line as run from the repository root."""
        return shlex.join(self.argv("python"))


def config_path(name_or_path: str, relative_to: Path) -> Path:
    """A config's file: a path ending in .json (relative to `relative_to`), or a name in benchmarks/configs/."""
    if name_or_path.endswith(".json"):
        return relative_to / name_or_path
    return CONFIG_DIR / f"{name_or_path}.json"


def load_config(name_or_path: str, relative_to: Path, extending: tuple[Path, ...] = ()) -> BenchmarkConfig:
    """Read a config file, starting from the config it extends (a path there is relative to the file);
    `extending` holds the configs that led here, to refuse a cycle."""
    path = config_path(name_or_path, relative_to)
    if path.resolve() in extending:
        raise ConfigError(f"configs extend each other in a cycle: {' -> '.join(p.name for p in (*extending, path))}")
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise ConfigError(f"config not found: {path} (shipped configs: {shipped})")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object of scripts/train.py options")
    per_dataset = raw.get("per_dataset", {})
    if not isinstance(per_dataset, dict) or not all(isinstance(value, dict) for value in per_dataset.values()):
        raise ConfigError(f'{path}: "per_dataset" must map dataset names to objects of options')
    base = (
        load_config(raw["extends"], path.parent, (*extending, path.resolve()))
        if "extends" in raw
        else BenchmarkConfig(path.stem, "", {})
    )
    merged_per_dataset = {
        dataset: {**base.per_dataset.get(dataset, {}), **per_dataset.get(dataset, {})}
        for dataset in sorted(set(base.per_dataset) | set(per_dataset))
    }
    return BenchmarkConfig(
        name=path.stem,
        description=raw.get("description", ""),
        options={**base.options, **{key: value for key, value in raw.items() if key not in CONFIG_KEYS}},
        per_dataset=merged_per_dataset,
    )


def option_arguments(options: dict) -> list[str]:
    """`--key value` command-line arguments for a dict of options (lists become several values)."""
    arguments = []
    for key, value in options.items():
        values = value if isinstance(value, list) else [value]
        arguments += [f"--{key}", *(json.dumps(item) if isinstance(item, bool) else str(item) for item in values)]
    return arguments


def train_parser():
    """The argument parser of scripts/train.py (the same three dataclasses)."""
    from transformers import HfArgumentParser

    from protomol_hf.training import DataArguments, ModelArguments, ProtoMolTrainingArguments

    return HfArgumentParser(
        (ModelArguments, DataArguments, ProtoMolTrainingArguments), prog=TRAIN_SCRIPT, exit_on_error=False
    )


def check_config(config: BenchmarkConfig, known_options: set, known_datasets: set) -> None:
    """Fail on an option scripts/train.py does not have, one the harness sets, or an unknown dataset."""
    unknown_datasets = sorted(set(config.per_dataset) - known_datasets)
    if unknown_datasets:
        raise ConfigError(f"config {config.name}: per_dataset names unknown datasets: {', '.join(unknown_datasets)}")
    scopes = {"": config.options, **{f' (per_dataset "{d}")': o for d, o in config.per_dataset.items()}}
    for scope, options in scopes.items():
        unknown = sorted(set(options) - known_options)
        if unknown:
            suggestions = sorted({m for key in unknown for m in difflib.get_close_matches(key, known_options, n=1)})
            hint = f"did you mean {', '.join(suggestions)}? " if suggestions else ""
            raise ConfigError(
                f"config {config.name}{scope}: not scripts/train.py options: {', '.join(unknown)} "
                f"({hint}see `python {TRAIN_SCRIPT} --help`)"
            )
        reserved = sorted(set(options) & set(HARNESS_OPTIONS))
        if reserved:
            raise ConfigError(f"config {config.name}{scope}: set by the harness, remove: {', '.join(reserved)}")
        unset = sorted(key for key, value in options.items() if value is None)
        if unset:
            raise ConfigError(f"config {config.name}{scope}: null values ({', '.join(unset)}); omit the key instead")


def plan_runs(
    config: BenchmarkConfig,
    datasets: list[str],
    splits: list[str],
    extra_arguments: list[str],
    output_root: Path,
    processes: int = 1,
) -> list[PlannedRun]:
    """Every run of the benchmark, its arguments checked by the scripts/train.py parser. With `processes` > 1 the
    batch size the options give stays the batch of an optimizer step: each process takes 1/processes of it."""
    from protomol_hf.data import MOLECULENET_DATASETS, bundled_split_path

    parser = train_parser()
    known_options = {action.dest for action in parser._actions} - {"help"}
    check_config(config, known_options, set(MOLECULENET_DATASETS))
    # Given after the config's options, these would silently win over the harness's own (a BBBP score recorded
    # as BACE's).
    reserved = [
        argument
        for argument in extra_arguments
        if argument.startswith("--") and argument[2:].split("=")[0].replace("-", "_") in HARNESS_OPTIONS
    ]
    if reserved:
        raise ConfigError(f"set by the harness, remove from the arguments after --: {' '.join(reserved)}")
    runs = []
    # A dataset or split named twice would run twice, into the same folder.
    datasets, splits = list(dict.fromkeys(datasets)), list(dict.fromkeys(splits))
    for dataset in datasets:
        if dataset not in MOLECULENET_DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; bundled: {', '.join(MOLECULENET_DATASETS)}")
        for split in splits:
            try:
                bundled_split_path(dataset, split)
            except FileNotFoundError as error:
                raise ConfigError(str(error)) from None
            output_dir = output_root / config.name / dataset / split
            train_arguments = [
                *("--dataset_name", dataset, "--split_file", split, "--output_dir", display_path(output_dir)),
                *option_arguments(config.options_for(dataset)),
                *extra_arguments,
            ]
            try:
                parsed, unknown = parser.parse_known_args(train_arguments)
            except argparse.ArgumentError as error:
                raise ConfigError(f"config {config.name}, dataset {dataset}: {TRAIN_SCRIPT} rejects {error}") from None
            if unknown:
                raise ConfigError(f"{TRAIN_SCRIPT} does not know these extra arguments: {shlex.join(unknown)}")
            if processes > 1:
                batch_size = parsed.per_device_train_batch_size
                if batch_size % processes:
                    raise ConfigError(
                        f"dataset {dataset}: a batch of {batch_size} molecules does not divide among {processes} "
                        "processes; pass -- --per_device_train_batch_size with a multiple of --processes"
                    )
                train_arguments += ["--per_device_train_batch_size", str(batch_size // processes)]
            runs.append(
                PlannedRun(
                    dataset=dataset,
                    split=split,
                    seed=parsed.seed,
                    epochs=parsed.num_train_epochs,
                    max_steps=parsed.max_steps,
                    overrides=config.per_dataset.get(dataset, {}),
                    output_dir=output_dir,
                    train_arguments=train_arguments,
                    processes=processes,
                )
            )
    return runs


def display_path(path: Path) -> str:
    """A path relative to the repository root when it lies inside it (commands run from there)."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def elapsed_since(start: float, device: str) -> float:
    """Seconds since `start` (a `time.perf_counter()`), after the device's queued work has finished: CUDA runs
    asynchronously, so an unsynchronized clock would time only the launches."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start


def report_results(results: dict, output: Path | None) -> None:
    """Print a speed script's results as JSON and, given a path, write them there for the report."""
    print(json.dumps(results, indent=2))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")


def git_commit() -> str:
    """HEAD of the checkout, with '-dirty' when tracked files differ from it. The harness's own outputs (results,
    report) do not count: a run that follows another in the same checkout would otherwise always be dirty."""
    own_outputs = [f":(exclude){path.relative_to(REPO)}" for path in (DEFAULT_RESULTS_DIR, DEFAULT_DOCS_FILE)]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        diff = ["git", "diff", "--quiet", "HEAD", "--", ".", *own_outputs]
        dirty = subprocess.run(diff, cwd=REPO, capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or platform.processor() where there is none."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_hardware() -> dict:
    """The machine a run used: CPU, torch build and CUDA device."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "processor": cpu_model_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


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
        "hardware": describe_hardware(),
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
        with append_lock, results_file.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
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


def summarize(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def is_random_split(split: str) -> bool:
    return split.startswith("random")


def format_epochs(records: list[dict]) -> str:
    labels = {
        f"max_steps={record['max_steps']}" if record["max_steps"] > 0 else f"{record['epochs']:g}" for record in records
    }
    return ", ".join(sorted(labels))


def format_options(options: dict) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in options.items())


def format_hardware(hardware: dict) -> str:
    device = hardware["cuda_device"] or "no CUDA device"
    return (
        f"{hardware['cpu_count']} CPUs ({hardware['processor']}), {hardware['platform']}, "
        f"Python {hardware['python']}, torch {hardware['torch']}, {device}"
    )


def config_sort_key(name: str) -> tuple:
    return (name != "default", name)


def metric_label(metric: str) -> str:
    """The metric with the direction that is better: 'rmse ↓', 'roc_auc ↑'."""
    return f"{metric} {'↓' if metric == 'rmse' else '↑'}"


def epochs_changed_by_extra(record: dict) -> bool:
    """Whether an extra train argument (after `--`, so a later `--num_train_epochs` in the command) changed the
    epochs the config set for this dataset."""
    words = shlex.split(record["command"])
    given = [float(words[i + 1]) for i, word in enumerate(words[:-1]) if word == "--num_train_epochs"]
    configured = record["overrides"].get("num_train_epochs", given[0] if given else record["epochs"])
    return configured != record["epochs"]


def results_table(records: list[dict]) -> list[str]:
    """One row per dataset: random-split mean ± std (n), scaffold, epochs, wall time, per-dataset options."""
    lines = [
        "| dataset | metric | random splits: mean ± std | n | scaffold | epochs (max) | mean wall (s) | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_dataset = defaultdict(list)
    for record in records:
        by_dataset[record["dataset"]].append(record)
    for dataset in sorted(by_dataset):
        rows = by_dataset[dataset]
        random_values = [r["value"] for r in rows if is_random_split(r["split"])]
        scaffold_values = [r["value"] for r in rows if r["split"] == "scaffold"]
        metric = rows[0]["metric"]
        scaffold = summarize(scaffold_values) + (f" (n={len(scaffold_values)})" if len(scaffold_values) > 1 else "")
        splits_by_overrides = defaultdict(list)
        for r in rows:
            if r["overrides"]:
                splits_by_overrides[json.dumps(r["overrides"], sort_keys=True)].append(r["split"])
        # Runs recorded under different versions of a config: say which splits had which options.
        notes = [
            f"per-dataset: {format_options(json.loads(o))}"
            + (f" ({', '.join(sorted(splits))})" if len(splits_by_overrides) > 1 else "")
            for o, splits in sorted(splits_by_overrides.items())
        ]
        # Extra train arguments (after `--`) are only in the command; say when they changed the epochs.
        notes += [
            f"{r['split']}: {r['epochs']:g} epochs by an extra argument" for r in rows if epochs_changed_by_extra(r)
        ]
        shared = sorted(r["split"] for r in rows if r.get("parallel_jobs", 1) > 1)
        if shared:
            notes.append(f"{', '.join(shared)}: run beside other runs (--jobs), wall time not comparable")
        data_parallel = sorted(f"{r['split']}: {r['processes']} processes" for r in rows if r.get("processes", 1) > 1)
        if data_parallel:
            notes.append(f"data-parallel (--processes): {', '.join(data_parallel)}")
        resumed = sorted(f"{r['split']} from {r['resumed_from']}" for r in rows if r.get("resumed_from"))
        if resumed:
            notes.append(
                f"resumed after an interruption ({', '.join(resumed)}): wall time counts the training before the "
                "checkpoint, not that attempt's start-up"
            )
        wall = statistics.mean(r["wall_s"] for r in rows)
        lines.append(
            f"| {dataset} | {metric_label(metric)} | {summarize(random_values)} | {len(random_values)} | {scaffold} "
            f"| {format_epochs(rows)} | {wall:.0f} | {'; '.join(notes)} |"
        )
    return lines


def missing_default_runs(default_records: list[dict]) -> list[str]:
    """The protocol's default runs (every bundled dataset, DEFAULT_SPLITS) that `default_records`, the default
    config's runs, lack, as report lines."""
    from protomol_hf.data import MOLECULENET_DATASETS

    done = {(r["dataset"], r["split"]) for r in default_records}
    missing = [
        f"{dataset} ({', '.join(splits)})"
        for dataset in sorted(MOLECULENET_DATASETS)
        if (splits := [split for split in DEFAULT_SPLITS if (dataset, split) not in done])
    ]
    return ["", f"Not run yet: {'; '.join(missing)}."] if missing else []


def paper_comparison(records: list[dict]) -> list[str]:
    lines = [
        "| dataset | metric | paper's figure (not measured here) | source | this harness, random splits |",
        "|---|---|---|---|---|",
    ]
    for claim in PAPER_FIGURES:
        by_config = defaultdict(list)
        for record in records:
            if record["dataset"] == claim["dataset"] and is_random_split(record["split"]):
                by_config[record["config"]].append(record["value"])
        measured = "; ".join(
            f"{name}: {summarize(values)} (n={len(values)})"
            for name, values in sorted(by_config.items(), key=lambda item: config_sort_key(item[0]))
        )
        lines.append(
            f"| {claim['dataset']} | {claim['metric']} | **{claim['figure']}** (paper) | {claim['source']} "
            f"| {claim.get('instead_of_runs') or measured or 'not run yet'} |"
        )
    return lines


@dataclass(frozen=True)
class Pairing:
    """One configuration against the default ProtoMol on one dataset, over the splits and seeds both ran."""

    config: str
    dataset: str
    metric: str
    default_values: tuple
    config_values: tuple
    valid_difference: float

    @property
    def _sign(self) -> int:
        """+1 where higher is better (ROC-AUC), -1 where lower is (RMSE)."""
        return -1 if self.metric == "rmse" else 1

    @property
    def default_mean(self) -> float:
        return statistics.mean(self.default_values)

    @property
    def config_mean(self) -> float:
        return statistics.mean(self.config_values)

    @property
    def difference(self) -> float:
        """Configuration minus default, test means."""
        return self.config_mean - self.default_mean

    @property
    def better(self) -> bool:
        return self._sign * self.difference > 0

    @property
    def better_on_valid(self) -> bool:
        return self._sign * self.valid_difference > 0

    @property
    def better_splits(self) -> int:
        pairs = zip(self.config_values, self.default_values, strict=True)
        return sum(self._sign * (theirs - ours) > 0 for theirs, ours in pairs)


def pair_with_default(records: list[dict]) -> list[Pairing]:
    """Each other config (ablations, chemprop) against the default ProtoMol on the splits both have run."""
    default = {(r["dataset"], r["split"], r["seed"]): r for r in records if r["config"] == "default"}
    pairs = defaultdict(list)
    for record in records:
        key = (record["dataset"], record["split"], record["seed"])
        if record["config"] != "default" and key in default:
            pairs[(record["config"], record["dataset"])].append((record, default[key]))
    return [
        Pairing(
            config=name,
            dataset=dataset,
            metric=dataset_pairs[0][0]["metric"],
            default_values=tuple(ours["value"] for _, ours in dataset_pairs),
            config_values=tuple(theirs["value"] for theirs, _ in dataset_pairs),
            valid_difference=statistics.mean(
                theirs["valid_value"] - ours["valid_value"] for theirs, ours in dataset_pairs
            ),
        )
        for (name, dataset), dataset_pairs in sorted(
            pairs.items(), key=lambda item: (config_sort_key(item[0][0]), item[0][1])
        )
    ]


def paired_comparison(pairings: list[Pairing]) -> list[str]:
    if not pairings:
        return []
    lines = [
        "## Paired with the default model",
        "",
        "Each configuration against the default ProtoMol on the same splits and seeds (random and scaffold):",
        "the difference of the test means (configuration minus default) and on how many splits the",
        "configuration was better (higher ROC-AUC, lower RMSE). With n = 1 to 3 splits, a difference smaller",
        "than the spread between splits is not a verdict. The validation difference is the one a choice of",
        "defaults may use; the test columns are the verdict.",
        "",
        "| configuration | dataset | metric | n | default | configuration | difference | better on "
        "| valid difference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pairing in pairings:
        n = len(pairing.config_values)
        lines.append(
            f"| {pairing.config} | {pairing.dataset} | {metric_label(pairing.metric)} | {n} "
            f"| {pairing.default_mean:.3f} | {pairing.config_mean:.3f} "
            f"| {pairing.difference:+.3f} | {pairing.better_splits} of {n} | {pairing.valid_difference:+.3f} |"
        )
    return ["", *lines]


def paired_summary(pairings: list[Pairing]) -> list[str]:
    """Per configuration, the table above counted over datasets: the verdict on each component."""
    if not pairings:
        return []
    by_config = defaultdict(list)
    for pairing in pairings:
        by_config[pairing.config].append(pairing)
    lines = [
        "## Across datasets",
        "",
        "The table above counted per configuration: on how many datasets its test mean was better than the",
        "default's, on how many of all its paired splits it was better, and on how many datasets its validation",
        "mean was. An ablation that is better on few datasets removes a part that helps; for `chemprop_defaults`",
        "the counts are where chemprop beat ProtoMol.",
        "",
        "| configuration | datasets | better on (datasets, test) | better on (splits, test) "
        "| better on (datasets, validation) |",
        "|---|---|---|---|---|",
    ]
    for name, config_pairings in by_config.items():
        datasets = len(config_pairings)
        splits = sum(len(pairing.config_values) for pairing in config_pairings)
        lines.append(
            f"| {name} | {', '.join(pairing.dataset for pairing in config_pairings)} "
            f"| {sum(pairing.better for pairing in config_pairings)} of {datasets} "
            f"| {sum(pairing.better_splits for pairing in config_pairings)} of {splits} "
            f"| {sum(pairing.better_on_valid for pairing in config_pairings)} of {datasets} |"
        )
    return ["", *lines]


def prototype_count(config_name: str, default: dict, default_count: int) -> int | None:
    """N of `default` or of a shipped config whose options differ from the `default` options only in the
    prototype options; else None."""
    if not (CONFIG_DIR / f"{config_name}.json").is_file():
        return None
    options = load_config(config_name, CONFIG_DIR).options
    changed = {key for key in options.keys() | default.keys() if options.get(key) != default.get(key)}
    if not changed <= PROTOTYPE_OPTIONS:
        return None
    return options.get("num_prototypes_per_class", default_count)


def prototype_count_table(records: list[dict]) -> list[str]:
    """Per dataset, the random-split test and validation means at each prototype count N that has runs."""
    from protomol_hf import ProtoMolConfig

    default = load_config("default", CONFIG_DIR).options
    default_count = ProtoMolConfig().num_prototypes_per_class
    counts = {name: prototype_count(name, default, default_count) for name in {record["config"] for record in records}}
    by_dataset: defaultdict[str, defaultdict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if counts[record["config"]] is not None and is_random_split(record["split"]):
            by_dataset[record["dataset"]][counts[record["config"]]].append(record)
    swept = {dataset: by_count for dataset, by_count in by_dataset.items() if len(by_count) > 1}
    if not swept:
        return []
    lines = [
        "## Prototype count N",
        "",
        "The default configuration (N = 5) and the `prototypes_N` configs, per dataset on the random splits:",
        "test mean ± std (n), then the validation mean. The paper reports a hump in N.",
        "",
        "| dataset | metric | N | test | n | valid |",
        "|---|---|---|---|---|---|",
    ]
    for dataset, by_count in sorted(swept.items()):
        for count, count_records in sorted(by_count.items()):
            metric = count_records[0]["metric"]
            lines.append(
                f"| {dataset} | {metric_label(metric)} | {count} "
                f"| {summarize([r['value'] for r in count_records])} | {len(count_records)} "
                f"| {statistics.mean(r['valid_value'] for r in count_records):.3f} |"
            )
    return ["", *lines]


def configs_overview(records: list[dict]) -> list[str]:
    runs_per_config = Counter(record["config"] for record in records)
    lines = ["| config | options | description | runs recorded |", "|---|---|---|---|"]
    for path in sorted(CONFIG_DIR.glob("*.json"), key=lambda p: config_sort_key(p.stem)):
        raw = json.loads(path.read_text())
        description = raw.pop("description", "")
        lines.append(f"| {path.stem} | `{json.dumps(raw)}` | {description} | {runs_per_config[path.stem]} |")
    return lines


def speed_section(results_dir: Path, heading: str = "Speed") -> list[str]:
    """Featurization, text-feature caching and prediction throughput and the training-step profile, from the
    speed scripts' JSON files in `results_dir` (the CPU figures; a subfolder per GPU holds its own)."""
    featurization_file = results_dir / "featurization.json"
    inference_files = sorted(results_dir.glob("inference*.json"))
    profile_files = sorted(results_dir.glob("profile_training*.json"))
    text_cache_files = sorted(results_dir.glob("text_cache*.json"))
    training_files = sorted(results_dir.glob("train*.jsonl"))
    if not (featurization_file.is_file() or inference_files or profile_files or text_cache_files or training_files):
        return []
    lines = ["", f"## {heading}", ""]
    if featurization_file.is_file():
        f = json.loads(featurization_file.read_text())
        lines += [
            f"Featurization (`python scripts/benchmark_featurization.py`, {f['num_molecules']:,} {f['dataset']} "
            f"SMILES, {f['machine']['cpu_count']} CPUs): {f['smiles_to_graph']['molecules_per_s']:,.0f} molecules/s "
            f"in one process, {f['featurize_many']['molecules_per_s']:,.0f}/s with {f['featurize_many']['workers']} "
            f"processes; `torch_geometric.utils.from_smiles` "
            f"{f['torch_geometric_from_smiles']['molecules_per_s']:,.0f}/s, so "
            f"**{f['speedup_per_core_vs_from_smiles']:.2f}x** per core.",
            "",
        ]
    if text_cache_files:
        lines += text_cache_table([json.loads(path.read_text()) for path in text_cache_files])
    for index, inference_file in enumerate(inference_files):
        lines += [""] * (index > 0) + inference_lines(json.loads(inference_file.read_text()))
    for profile_file in profile_files:
        lines += profile_lines(json.loads(profile_file.read_text()))
    if training_files:
        lines += training_lines([record for path in training_files for record in read_jsonl(path)])
    return lines


def speed_comparison(folder: Path) -> list[str]:
    """The ratios of one `scripts/bench_speed.py` run, then the figures of its steps."""
    summary = json.loads((folder / "speed.json").read_text())
    lines = [
        "",
        f"## Speed against chemprop, in one run (`python scripts/bench_speed.py`, {display_path(folder)})",
        "",
        f"Machine: {format_hardware(summary['hardware'])}; commit `{summary['git_commit']}`; chemprop: "
        f"{summary['chemprop']}.",
        "",
        "| measure | ProtoMol | chemprop v2 | ProtoMol / chemprop |",
        "|---|---|---|---|",
    ]
    for dataset, entry in summary["training"].items():
        theirs = entry.get("chemprop", {})
        # Runs before --train_splits existed trained on random_0 only.
        splits = entry.get("splits", ["random_0"])
        split_label = splits[0] if len(splits) == 1 else f"mean over {', '.join(splits)}"
        # One block of rows per ProtoMol config trained in the run (e.g. default and bf16), each against chemprop.
        for config, ours in entry["protomol"].items():
            ratios = entry["protomol_over_chemprop"].get(config, {})
            label = f"{dataset} {split_label}, {config}"
            for measure, key, ratio_key in (
                ("time to best validation (s)", "time_to_best_validation_s", "time_to_best_validation"),
                ("seconds per epoch", "seconds_per_epoch", "seconds_per_epoch"),
            ):
                lines.append(
                    f"| {label}: {measure} | {ours.get(key, '–')} | {theirs.get(key, '–')} | "
                    f"{ratios.get(ratio_key, '–')} |"
                )
            test_key = next(key for key in ours if key.startswith("test_"))
            lines.append(
                f"| {label}: peak RSS (MB), best epoch, {test_key.removeprefix('test_')} | {ours['peak_rss_mb']}, "
                f"{ours['best_epoch']}, {ours[test_key]} | {theirs.get('peak_rss_mb', '–')}, "
                f"{theirs.get('best_epoch', '–')}, {theirs.get(test_key, '–')} | |"
            )
            for split, figures in ours.get("per_split", {}).items():
                chemprop_split = theirs.get("per_split", {}).get(split, {})
                lines.append(
                    f"| {dataset} {split}, {config}: best epoch, time to best validation (s) | "
                    f"{figures['best_epoch']}, {figures['time_to_best_validation_s']} | "
                    f"{chemprop_split.get('best_epoch', '–')}, {chemprop_split.get('time_to_best_validation_s', '–')} | |"
                )
    inference = summary["inference"]
    chemprop_predict = inference.get("chemprop_predict")
    chemprop_note, chemprop_rate = "", "–"
    if chemprop_predict:
        chemprop_note = f"; chemprop on the {chemprop_predict['molecules']:,} parsable ones"
        chemprop_rate = chemprop_predict["molecules_per_s"]
    for dtype, rate in inference["protomol_predict_molecules_per_s"].items():
        ratio = inference.get("protomol_over_chemprop", {}).get(dtype, "–")
        lines.append(
            f"| predict from SMILES, ProtoMol in {dtype} (molecules/s, start-up included{chemprop_note}) | {rate} | "
            f"{chemprop_rate} | {ratio} |"
        )
    shares = ", ".join(f"{share:.0%} in {dtype}" for dtype, share in summary["prediction_vs_bare_text_model"].items())
    lines += [
        "",
        f"Prediction from SMILES at {shares} of the bare text model (in the same dtype); featurization "
        f"{summary['featurization_per_core_vs_from_smiles']:.2f}x `from_smiles` per core. The steps' own figures:",
    ]
    return lines + speed_section(folder, heading="Speed in that run: the steps of bench_speed.py")


def run_settings(results: dict) -> str:
    """Where a speed script ran: the CPU count, and the GPU and precision when it used one."""
    machine = results["machine"]
    if not machine.get("cuda_device"):
        return f"{machine['cpu_count']} CPUs" + (
            f", {results['dtype']}" if results.get("dtype", "float32") != "float32" else ""
        )
    return f"{machine['cuda_device']}, {results['dtype']}, {machine['cpu_count']} CPUs"


def text_cache_table(results: list[dict]) -> list[str]:
    """One row per `scripts/bench_text_cache.py` run."""
    lines = [
        "Text-feature caching (`python scripts/bench_text_cache.py`: template descriptions, frozen text model, "
        "states written to a memory-mapped float16 file), against the bare text model on the same batches:",
        "",
        "| text model | parameters | texts | where | cache build texts/s | bare text model texts/s | cache size |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: r["text_model_parameters_m"]):
        lines.append(
            f"| {r['text_model']} | {r['text_model_parameters_m']:,}M | {r['distinct_texts']:,} ({r['dataset']}) | "
            f"{run_settings(r)} | {r['texts_per_s']['cache_build']:,} | {r['texts_per_s']['bare_text_model']:,} | "
            f"{r['cache_size_mb']:,} MB |"
        )
    return [*lines, ""]


def _count(number: int, noun: str) -> str:
    """'1 process', '2 processes'."""
    return f"{number:,} {noun}{'' if number == 1 else 'es' if noun.endswith('s') else 's'}"


def inference_lines(i: dict) -> list[str]:
    """The `scripts/bench_inference.py` table and its summary."""
    rates, stages = i["molecules_per_s"], i["stages"]
    return [
        f"Prediction from SMILES (`python scripts/bench_inference.py`, the first {i['num_molecules']:,} rows of "
        f"{i['dataset']}, batch size {i['batch_size']}, featurization in {_count(i.get('num_workers', 1), 'process')}, "
        f"{run_settings(i)}, model: {i['model']}):",
        "",
        "| stage | molecules/s |",
        "|---|---|",
        f"| `protomol predict` CSV to CSV (start-up and loading included; peak RSS "
        f"{i['cli']['peak_rss_mb']:,.0f} MB) | {rates['protomol_predict_cli']} |",
        f"| `predict_smiles` in process | {rates['predict_smiles_in_process']} |",
        f"| featurization only (graph, template description, tokens) | {rates['featurization']} |",
        f"| model only (text model + ProtoMol) | {rates['model_forward']} |",
        f"| bare text model on the same batches (the floor) | {rates['bare_text_model']} |",
        f"| bare text model, batches in input order | {rates['bare_text_model_input_order']} |",
        "",
        f"Prediction runs at **{i['predict_vs_bare_text_model']:.0%}** of the bare text model's throughput. "
        f"Batches group descriptions of similar length: {stages['padded_tokens_per_molecule']} padded tokens "
        f"per molecule for {stages['mean_tokens_per_molecule']} real ones, against "
        f"{stages['padded_tokens_per_molecule_input_order']} in input order.",
    ]


def training_lines(records: list[dict]) -> list[str]:
    """Timing of harness runs on this machine (the benchmark's record format), one row per run."""
    lines = [
        "",
        "Training on this machine, in the benchmark harness's record format (`python scripts/benchmark.py --config "
        "default --datasets D --splits S -- OPTIONS`, or the launch command shown). The last column is each run's "
        "command without the data set, split and output folder:",
        "",
        "| dataset | split | epochs | s per epoch | wall s (data preparation included) | peak RSS MB | test metric "
        "| command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['epochs_run']:g} | {r['train_wall_s'] / r['epochs_run']:.1f} | "
            f"{r['wall_s']:.0f} | {r['peak_rss_mb']:,.0f} | {r['metric']} {r['value']:.3f} | "
            f"`{train_options(r['command'])}` |"
        )
    return lines


def train_options(command: str) -> str:
    """A recorded command without what every run has: `python scripts/train.py` and the data set, split and
    output folder (a launcher such as `accelerate launch ...` stays)."""
    words, kept = command.split(), []
    if words[:2] == ["python", "scripts/train.py"]:
        words = words[2:]
    while words:
        word = words.pop(0)
        if word in ("--dataset_name", "--split_file", "--output_dir"):
            words.pop(0)
        else:
            kept.append(word)
    return " ".join(kept)


def profile_lines(profile: dict) -> list[str]:
    """One paragraph per `scripts/profile_training.py` run."""
    parts = ", ".join(f"{part} {ms} ms" for part, ms in profile["forward_ms_per_step"].items() if ms >= 1)
    top = ", ".join(f"{op} {share:.0%}" for op, share in list(profile["top_operators_self_cpu_share"].items())[:4])
    changes = json.dumps(profile["config_changes"]) if profile["config_changes"] else "the default model"
    where = "cached text states"
    gpu = ""
    if "gpu_busy_ms_per_step" in profile:
        where += f", {profile['device']}" + (", bf16 autocast" if profile["bf16_autocast"] else ", float32")
        gpu = (
            f" The GPU is busy {profile['gpu_busy_ms_per_step']} ms per step; the host issues "
            f"{profile['operators_per_step']:,} operators and waits on {profile['host_syncs_per_step']} "
            "synchronizations per step (forward times are the host's)."
        )
    return [
        "",
        f"Training step profile of {changes} (`python scripts/profile_training.py`, {profile['dataset']}, batch "
        f"{profile['batch_size']}, {where}): {profile['ms_per_step']} ms per step; forward {parts}; "
        f"backward, optimizer and the rest {profile['rest_of_step_ms (backward, optimizer, glue)']} ms. "
        f"Operators by self CPU time: {top}.{gpu}",
    ]


def render_markdown(records: list[dict], results_dir: Path) -> str:
    """docs/benchmarks.md: the paper comparison, the configs, and per config its table, hardware and commands."""
    pairings = pair_with_default(records)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python scripts/benchmark.py` from `{display_path(results_dir)}/*.jsonl`; do not edit by hand.",
        "Protocol: the fixed splits in `data/splits/<dataset>/<split>.json`; the model of the best validation",
        "epoch is scored once on the test rows. Classification: mean ROC-AUC over tasks; regression: RMSE in the",
        "target's units. A dataset is reported as mean ± sample standard deviation over `random_0..2`",
        "(n = runs), and its `scaffold` value separately.",
        "",
        "## Against the paper",
        "",
        *paper_comparison(records),
        "",
        "The paper's ablation claims (measured here: 'Paired with the default model' below):",
        "",
        *(f"- {claim}" for claim in PAPER_ABLATION_CLAIMS),
        "",
        "## Configurations",
        "",
        "Shipped in `benchmarks/configs/`: `python scripts/benchmark.py --config NAME --datasets ...`.",
        "",
        *configs_overview(records),
        *paired_comparison(pairings),
        *paired_summary(pairings),
        *prototype_count_table(records),
    ]
    lines += speed_section(results_dir)
    # Subfolders: a `scripts/bench_speed.py` run (it writes speed.json), or a GPU's figures.
    for folder in sorted(path for path in results_dir.iterdir() if path.is_dir()) if results_dir.is_dir() else []:
        if (folder / "speed.json").is_file():
            lines += speed_comparison(folder)
        else:
            lines += speed_section(folder, heading=f"Speed on {folder.name.upper()}")
        if (folder / "README.md").is_file():
            lines += ["", (folder / "README.md").read_text().strip()]
    if not records:
        lines += ["", "No runs recorded yet."]
    by_config = defaultdict(list)
    for record in records:
        by_config[(record["config"], record["system"])].append(record)
    for (name, system), config_records in sorted(by_config.items(), key=lambda item: config_sort_key(item[0][0])):
        hardware = Counter(format_hardware(record["hardware"]) for record in config_records)
        commits = sorted({record["git_commit"] for record in config_records})
        commands = sorted(record["command"] for record in config_records)
        lines += [
            "",
            f"## Results: {name} ({system})",
            "",
            *results_table(config_records),
            *(missing_default_runs(config_records) if (name, system) == ("default", SYSTEM) else []),
            "",
            "Hardware (runs): " + "; ".join(f"{machine} ({count})" for machine, count in sorted(hardware.items())),
            "",
            "Git commits: " + ", ".join(f"`{commit}`" for commit in commits),
            "",
            f"<details><summary>Commands ({len(commands)} runs, from the repository root)</summary>",
            "",
            "```bash",
            *commands,
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="%(prog)s [--config NAME|PATH.json] [--datasets D ...] [--splits S ...] [options] [-- TRAIN_ARGS ...]",
    )
    parser.add_argument(
        "--config", help="a config name in benchmarks/configs/ (e.g. default, no_alignment) or a JSON file"
    )
    parser.add_argument(
        "--datasets", nargs="+", help="bundled datasets to run (default: all of them; hiv and muv are large)"
    )
    parser.add_argument(
        "--splits", nargs="+", default=list(DEFAULT_SPLITS), help="bundled split names (default: %(default)s)"
    )
    parser.add_argument(
        "--results_dir",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        help="where CONFIG.jsonl files are appended and read (default: benchmarks/results)",
    )
    parser.add_argument(
        "--output_root",
        type=Path,
        default=DEFAULT_OUTPUT_ROOT,
        help="trained models go to OUTPUT_ROOT/CONFIG/DATASET/SPLIT (default: runs/benchmark)",
    )
    parser.add_argument(
        "--docs_file", type=Path, default=DEFAULT_DOCS_FILE, help="the rendered report (default: docs/benchmarks.md)"
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="training runs at a time, each given an equal share of the CPU cores through OMP_NUM_THREADS "
        "(unless you set it). Wall times of overlapping runs are not comparable; the report says so (default: 1)",
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="data-parallel training processes per run, started with `accelerate launch --config_file "
        "configs/accelerate_ddp.yaml` (on CPU each gets an equal share of the cores). The config's batch size "
        "stays the batch of one optimizer step, split among the processes (default: 1)",
    )
    parser.add_argument(
        "--keep_checkpoints",
        action="store_true",
        help="keep the Trainer's checkpoint-* folders of finished runs (by default they are deleted; the best "
        "model stays in OUTPUT_ROOT/CONFIG/DATASET/SPLIT)",
    )
    parser.add_argument(
        "--from_scratch",
        action="store_true",
        help="train runs that an interrupted benchmark left unfinished from the start, deleting their checkpoints "
        "(by default such a run resumes from its last checkpoint)",
    )
    parser.add_argument(
        "--render_only", action="store_true", help="run nothing; render the report from the existing results"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra_arguments = argv[argv.index("--") + 1 :] if "--" in argv else []
    harness_argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = build_parser()
    args = parser.parse_args(harness_argv)
    results_dir = args.results_dir.resolve()
    failures = 0
    if not args.render_only and args.config is None:
        parser.error("--config is required unless --render_only")
    from protomol_hf.data import MOLECULENET_DATASETS

    try:
        if not args.render_only:
            config = load_config(args.config, Path.cwd())
            datasets = args.datasets or list(MOLECULENET_DATASETS)
            runs = plan_runs(config, datasets, args.splits, extra_arguments, args.output_root.resolve(), args.processes)
            failures = run_benchmark(
                config,
                runs,
                results_dir / f"{config.name}.jsonl",
                args.jobs,
                args.keep_checkpoints,
                args.from_scratch,
            )
        report = render_markdown(load_records(results_dir), results_dir)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.docs_file.parent.mkdir(parents=True, exist_ok=True)
    args.docs_file.write_text(report)
    print(f"wrote {display_path(args.docs_file)}")
    if failures:
        print(f"{failures} run(s) failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
