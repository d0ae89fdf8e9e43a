"""docs/benchmarks.md rendered from the records: the paper's figures against the harness's, the configs, each
configuration paired with the default model, the prototype-count sweep, the speed sections (speed_report.py)
and per config its results table, hardware, commits and commands.
"""

import json
import shlex
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from benchmarks import CONFIG_DIR, display_path
from benchmarks.harness.configs import DEFAULT_SPLITS, load_config
from benchmarks.harness.runner import SYSTEM
from benchmarks.harness.speed_report import speed_comparison, speed_section
from benchmarks.machine import format_machine

# The options a prototype-count config changes (rendered as one table against N).
PROTOTYPE_OPTIONS = {"num_prototypes_per_class", "prototype_top_k"}

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


def render_markdown(records: list[dict], results_dir: Path) -> str:
    """docs/benchmarks.md: the paper comparison, the configs, and per config its table, hardware and commands."""
    pairings = pair_with_default(records)
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python -m benchmarks.harness` from `{display_path(results_dir)}/*.jsonl`; do not edit by hand.",
        "Protocol: the fixed splits in `src/protomol_hf/datasets/splits/<dataset>/<split>.json`; the model of the best validation",
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
        "Shipped in `benchmarks/configs/`: `python -m benchmarks.harness --config NAME --datasets ...`.",
        "",
        *configs_overview(records),
        *paired_comparison(pairings),
        *paired_summary(pairings),
        *prototype_count_table(records),
    ]
    lines += speed_section(results_dir)
    # Subfolders: a `benchmarks.speed.against_chemprop` run (it writes speed.json), or a GPU's figures.
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
        hardware = Counter(format_machine(record["hardware"]) for record in config_records)
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
