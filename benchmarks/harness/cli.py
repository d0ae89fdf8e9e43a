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

Examples, from the repository root:
    python -m benchmarks.harness --config default --datasets bace bbbp
    python -m benchmarks.harness --config no_alignment --datasets bace --splits random_0 -- --seed 1
    python -m benchmarks.harness --config default --datasets esol freesolv --jobs 2   # 2 runs at a time
    python -m benchmarks.harness --config default --datasets muv --splits random_0 --processes 2   # DDP
    python -m benchmarks.harness --render_only
"""

import argparse
import sys
from pathlib import Path

from benchmarks import REPO, REPORT_FILE, RESULTS_DIR, display_path
from benchmarks.harness.configs import DEFAULT_SPLITS, ConfigError, load_config, plan_runs
from benchmarks.harness.report import render_markdown
from benchmarks.harness.runner import load_records, run_benchmark
from protomol_hf.cli.common import positive_int

DEFAULT_OUTPUT_ROOT = REPO / "runs" / "benchmark"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.harness",
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
        default=RESULTS_DIR,
        help="where CONFIG.jsonl files are appended and read (default: benchmarks/results)",
    )
    parser.add_argument(
        "--output_root",
        type=Path,
        default=DEFAULT_OUTPUT_ROOT,
        help="trained models go to OUTPUT_ROOT/CONFIG/DATASET/SPLIT (default: runs/benchmark)",
    )
    parser.add_argument(
        "--docs_file", type=Path, default=REPORT_FILE, help="the rendered report (default: docs/benchmarks.md)"
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
