"""Benchmark configs and run planning: a config file read (with what it extends and its per-dataset options),
checked against scripts/train.py's options, and turned into the scripts/train.py invocations of a benchmark.

A config is a JSON object of scripts/train.py options, e.g. {"num_train_epochs": 30}, plus three
optional keys: "description", "extends" (a config whose options this one starts from) and
"per_dataset" ({"hiv": {"num_train_epochs": 10}}: options for one dataset only). Shipped configs are
in benchmarks/configs/ (default and the paper's ablations).
"""

import argparse
import difflib
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import CONFIG_DIR, display_path

TRAIN_SCRIPT = "scripts/train.py"
# How a run with --processes N > 1 is started: data-parallel over N processes (gloo on CPU, NCCL on GPUs).
DDP_LAUNCH = ("-m", "accelerate.commands.launch", "--config_file", "configs/accelerate_ddp.yaml", "--num_processes")
DEFAULT_SPLITS = ("random_0", "random_1", "random_2", "scaffold")
# Config keys that are not scripts/train.py options.
CONFIG_KEYS = ("description", "extends", "per_dataset")
# Options the harness sets for each run.
HARNESS_OPTIONS = ("dataset_name", "split_file", "output_dir")


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
