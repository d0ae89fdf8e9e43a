"""scripts/benchmark.py: a real tiny run on BACE (record, skip when recorded, failure, resume from a checkpoint),
config checks and the rendered report."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, TINY_MODEL_ARGS, load_script

RECORD_FIELDS = {
    "system",
    "config",
    "dataset",
    "split",
    "seed",
    "metric",
    "value",
    "valid_value",
    "parallel_jobs",
    "processes",
    "best_epoch",
    "epochs_run",
    "train_wall_s",
    "wall_s",
    "resumed_from",
    "peak_rss_mb",
    "git_commit",
    "epochs",
    "max_steps",
    "overrides",
    "hardware",
    "command",
}
# One optimizer step, no evaluation or checkpoints, SMILES as text: a BACE run takes seconds.
TINY_CONFIG = {
    "description": "One step of a tiny model.",
    "text_source": "smiles",
    "max_steps": 1,
    "eval_strategy": "no",
    "save_strategy": "no",
    "load_best_model_at_end": False,
    # A label column freesolv does not have: its runs fail.
    "per_dataset": {"freesolv": {"label_columns": ["no_such_column"]}},
}


@pytest.fixture(scope="module")
def benchmark():
    """scripts/benchmark.py imported as a module."""
    return load_script("benchmark")


def run_harness(tmp_path, *args):
    """Run scripts/benchmark.py with its results, models and report in `tmp_path`."""
    command = [
        sys.executable,
        str(REPO / "scripts" / "benchmark.py"),
        "--results_dir",
        str(tmp_path / "results"),
        "--output_root",
        str(tmp_path / "runs"),
        "--docs_file",
        str(tmp_path / "benchmarks.md"),
        *args,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_harness_records_resumes_and_renders(tmp_path, tiny_text_model):
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    extra = ["--", "--text_model", str(tiny_text_model), "--cache_dir", str(tmp_path / "cache"), *TINY_MODEL_ARGS]
    extra += ["--save_strategy", "steps", "--save_steps", "1"]  # a checkpoint, for the harness to clean up
    results_file = tmp_path / "results" / "tiny.jsonl"

    first = run_harness(
        tmp_path,
        "--config",
        "tiny.json",
        "--datasets",
        "bace",
        "freesolv",
        "--splits",
        "random_0",
        "--jobs",
        "2",
        *extra,
    )
    # Both run at once; the freesolv run fails, its log tail is shown, the bace run is still recorded.
    assert first.returncode == 1, first.stdout + first.stderr
    assert "tiny / freesolv / random_0 (seed 0): FAILED" in first.stderr
    assert "no_such_column" in first.stderr
    lines = results_file.read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record) == RECORD_FIELDS
    assert (record["system"], record["config"], record["dataset"], record["split"]) == (
        "protomol",
        "tiny",
        "bace",
        "random_0",
    )
    assert record["metric"] == "roc_auc" and 0 <= record["value"] <= 1 and 0 <= record["valid_value"] <= 1
    assert record["seed"] == 0 and record["max_steps"] == 1 and record["wall_s"] > 0 and record["peak_rss_mb"] > 0
    assert 0 < record["train_wall_s"] < record["wall_s"] and record["epochs_run"] > 0
    assert record["hardware"]["cpu_count"] == os.cpu_count() and record["hardware"]["torch"]
    assert record["parallel_jobs"] == 2 and record["processes"] == 1
    assert record["command"].startswith(
        "python scripts/train.py --dataset_name bace --split_file random_0 --output_dir "
    )
    assert "--max_steps 1" in record["command"] and "--load_best_model_at_end false" in record["command"]
    # The run's model stays; the checkpoint its one step saved is gone.
    assert (tmp_path / "runs" / "tiny" / "bace" / "random_0" / "results.json").is_file()
    assert (tmp_path / "runs" / "tiny" / "bace" / "random_0" / "model.safetensors").is_file()
    assert not list((tmp_path / "runs" / "tiny" / "bace" / "random_0").glob("checkpoint-*"))

    second = run_harness(tmp_path, "--config", "tiny.json", "--datasets", "bace", "--splits", "random_0", *extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "skipping" in second.stdout
    assert len(results_file.read_text().splitlines()) == 1

    (tmp_path / "benchmarks.md").unlink()
    rendered = run_harness(tmp_path, "--render_only")
    assert rendered.returncode == 0, rendered.stderr
    report = (tmp_path / "benchmarks.md").read_text()
    assert "## Results: tiny (protomol)" in report
    assert f"| bace | roc_auc ↑ | {record['value']:.3f} | 1 |" in report
    assert "random_0: run beside other runs (--jobs), wall time not comparable" in report
    assert record["command"] in report


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, tiny_text_model):
    (tmp_path / "two_steps.json").write_text(json.dumps({**TINY_CONFIG, "max_steps": 2}))
    harness = ["--config", "two_steps.json", "--datasets", "bace", "--splits", "random_0"]
    extra = ["--", "--text_model", str(tiny_text_model), "--cache_dir", str(tmp_path / "cache"), *TINY_MODEL_ARGS]
    extra += ["--save_strategy", "steps", "--save_steps", "1"]
    run_dir = tmp_path / "runs" / "two_steps" / "bace" / "random_0"
    results_file = tmp_path / "results" / "two_steps.jsonl"
    first = run_harness(tmp_path, *harness, "--keep_checkpoints", *extra)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(results_file.read_text())["resumed_from"] is None
    # As if the process had been killed after the first step's checkpoint.
    shutil.rmtree(run_dir / "checkpoint-2")
    (run_dir / "results.json").unlink()
    results_file.unlink()

    second = run_harness(tmp_path, *harness, *extra)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming from checkpoint-1" in second.stdout
    record = json.loads(results_file.read_text())
    results = json.loads((run_dir / "results.json").read_text())
    assert record["resumed_from"] == "checkpoint-1" and results["resumed_from"] == str(run_dir / "checkpoint-1")
    # The first attempt's training clock came back with the checkpoint and counts in both wall times.
    assert 0 < results["resumed_train_s"] < results["train_wall_s"] < record["wall_s"]
    assert json.loads((run_dir / "trainer_state.json").read_text())["global_step"] == 2
    assert not list(run_dir.glob("checkpoint-*"))


def test_from_scratch_deletes_the_checkpoints_of_an_interrupted_run(benchmark, tmp_path):
    run = benchmark.PlannedRun("bace", "random_0", 0, 1.0, -1, {}, tmp_path / "run", [])
    assert benchmark.interrupted_checkpoint(run) is None  # never started
    for step in (3, 12):
        (run.output_dir / f"checkpoint-{step}").mkdir(parents=True)
    assert benchmark.interrupted_checkpoint(run) == run.output_dir / "checkpoint-12"
    assert benchmark.interrupted_checkpoint(run, from_scratch=True) is None
    assert not list(run.output_dir.glob("checkpoint-*"))


def test_parallel_runs_share_the_cores(benchmark, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(benchmark.os, "cpu_count", lambda: 8)
    assert benchmark.training_environment(1) is None
    assert benchmark.training_environment(2)["OMP_NUM_THREADS"] == "4"
    assert benchmark.training_environment(16)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's choice wins
    assert benchmark.training_environment(2) is None
    with pytest.raises(SystemExit):
        benchmark.build_parser().parse_args(["--jobs", "0"])


def test_data_parallel_runs_launch_with_accelerate_and_split_the_batch(benchmark, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(benchmark.os, "cpu_count", lambda: 8)
    config = benchmark.load_config("default", tmp_path)
    (run,) = benchmark.plan_runs(config, ["bace"], ["random_0"], [], tmp_path, processes=2)
    words = run.argv("python")
    assert words[:7] == [
        "python",
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "configs/accelerate_ddp.yaml",
        "--num_processes",
        "2",
    ]
    assert words[7] == "scripts/train.py" and run.command == shlex.join(words)
    # The default batch of 32 molecules per optimizer step: 16 in each of the two processes (the last value wins).
    assert words[-2:] == ["--per_device_train_batch_size", "16"]
    assert benchmark.training_environment(2 * run.processes)["OMP_NUM_THREADS"] == "2"
    (single,) = benchmark.plan_runs(config, ["bace"], ["random_0"], [], tmp_path)
    assert single.argv("python")[1] == "scripts/train.py" and "--per_device_train_batch_size" not in single.command
    with pytest.raises(benchmark.ConfigError, match="does not divide among 3 processes"):
        benchmark.plan_runs(config, ["bace"], ["random_0"], [], tmp_path, processes=3)


def test_commit_is_dirty_for_code_changes_but_not_for_the_harness_outputs(benchmark, monkeypatch, tmp_path):
    for path in ("src.py", "benchmarks/results/default.jsonl", "docs/benchmarks.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("first\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run(git + command, check=True)
    monkeypatch.setattr(benchmark, "REPO", tmp_path)
    monkeypatch.setattr(benchmark, "DEFAULT_RESULTS_DIR", tmp_path / "benchmarks" / "results")
    monkeypatch.setattr(benchmark, "DEFAULT_DOCS_FILE", tmp_path / "docs" / "benchmarks.md")
    (tmp_path / "benchmarks/results/default.jsonl").write_text("first\nsecond\n")
    (tmp_path / "docs/benchmarks.md").write_text("rendered again\n")
    assert not benchmark.git_commit().endswith("-dirty")
    (tmp_path / "src.py").write_text("changed\n")
    assert benchmark.git_commit().endswith("-dirty")


def test_unknown_config_option_fails_before_running(tmp_path):
    (tmp_path / "typo.json").write_text(json.dumps({"cross_atention": "none"}))
    result = run_harness(tmp_path, "--config", "typo.json", "--datasets", "bace", "--splits", "random_0")
    assert result.returncode == 2
    assert "cross_atention" in result.stderr and "did you mean cross_attention" in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"cross_attention": "sideways"}, "invalid choice: 'sideways'"),
        ({"output_dir": "elsewhere"}, "set by the harness"),
        ({"per_dataset": {"bacee": {"num_train_epochs": 1}}}, "unknown datasets: bacee"),
        ({"per_dataset": {"bace": {"num_train_epoch": 1}}}, 'config bad (per_dataset "bace"): not scripts/train.py'),
    ],
)
def test_invalid_configs_are_rejected(benchmark, tmp_path, config, message):
    (tmp_path / "bad.json").write_text(json.dumps(config))
    loaded = benchmark.load_config("bad.json", tmp_path)
    with pytest.raises(benchmark.ConfigError) as error:
        benchmark.plan_runs(loaded, ["bace"], ["random_0"], [], tmp_path)
    assert message in str(error.value)


def test_extra_arguments_cannot_override_the_harness_and_repeats_run_once(benchmark, tmp_path):
    config = benchmark.load_config("default", tmp_path)
    # After the config's options these would win: a BBBP score recorded as BACE's.
    for extra in (["--dataset_name", "bbbp"], ["--output-dir=elsewhere"]):
        with pytest.raises(benchmark.ConfigError, match="set by the harness, remove from the arguments after --"):
            benchmark.plan_runs(config, ["bace"], ["random_0"], extra, tmp_path)
    runs = benchmark.plan_runs(config, ["bace", "bace"], ["random_0", "random_0"], [], tmp_path)
    assert len(runs) == 1


def test_a_cycle_of_extends_and_a_broken_results_line_are_one_line_errors(benchmark, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    with pytest.raises(
        benchmark.ConfigError, match=r"configs extend each other in a cycle: a.json -> b.json -> a.json"
    ):
        benchmark.load_config("a.json", tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    (results / "cut.jsonl").write_text('{"system": "protomol"}\n{"system": "prot\n')
    with pytest.raises(benchmark.ConfigError, match=r"cut.jsonl, line 2: not a JSON record"):
        benchmark.read_jsonl(results / "cut.jsonl")


def test_shipped_configs_are_valid_for_every_dataset_and_split(benchmark, tmp_path):
    names = sorted(path.stem for path in benchmark.CONFIG_DIR.glob("*.json"))
    assert {
        "default",
        "no_cross_attention",
        "last_layer_fusion",
        "no_alignment",
        "no_contrastive",
        "graph_only",
        "text_only",
    } <= set(names)
    assert {"prototypes_1", "prototypes_3", "prototypes_7", "text_smiles", "regression_4_bins"} <= set(names)
    datasets = ["bace", "bbbp", "clintox", "tox21", "toxcast", "sider", "hiv", "muv", "esol", "freesolv", "lipo", "qm7"]
    for name in names:
        runs = benchmark.plan_runs(
            benchmark.load_config(name, tmp_path), datasets, ["random_0", "scaffold"], [], tmp_path
        )
        assert len(runs) == 2 * len(datasets)
    default_runs = benchmark.plan_runs(
        benchmark.load_config("default", tmp_path), ["bace", "hiv"], ["random_0"], [], tmp_path
    )
    assert [(run.epochs, run.overrides) for run in default_runs] == [(30, {}), (5, {"num_train_epochs": 5})]
    ablation = benchmark.load_config("prototypes_3", tmp_path)
    assert ablation.options_for("hiv") == {
        "num_train_epochs": 5,
        "early_stopping_patience": 10,
        "num_prototypes_per_class": 3,
        "prototype_top_k": 3,
    }


def make_record(config, dataset, split, value, **changes):
    record = {
        "system": "protomol",
        "config": config,
        "dataset": dataset,
        "split": split,
        "seed": 0,
        "metric": "roc_auc",
        "value": value,
        "valid_value": value,
        "best_epoch": 3.0,
        "wall_s": 10.0,
        "peak_rss_mb": 900.0,
        "git_commit": "abc",
        "epochs": 30.0,
        "max_steps": -1,
        "overrides": {},
        "hardware": {
            "cpu_count": 2,
            "processor": "CPU",
            "platform": "Linux",
            "python": "3.11",
            "torch": "2.13.0",
            "cuda_device": None,
        },
        "command": f"python scripts/train.py --dataset_name {dataset} --split_file {split}",
    }
    return record | changes


def test_report_summarizes_splits_and_quotes_the_paper(benchmark, tmp_path):
    hiv = {"epochs": 10.0, "overrides": {"num_train_epochs": 10}}
    records = [
        make_record("default", "bace", "random_0", 0.80),
        make_record("default", "bace", "random_1", 0.84),
        make_record("default", "bace", "random_2", 0.88),
        make_record("default", "bace", "scaffold", 0.70),
        make_record("default", "hiv", "random_0", 0.75, processes=2, **hiv),
        make_record("no_alignment", "esol", "random_0", 1.2, metric="rmse"),
        make_record("no_cross_attention", "bace", "random_0", 0.78),
        make_record("no_cross_attention", "bace", "random_1", 0.86),
    ]
    lines = [json.dumps(record) for record in records]
    (tmp_path / "default.jsonl").write_text("\n".join(lines[:5]) + "\n")
    (tmp_path / "no_cross_attention.jsonl").write_text("\n".join(lines[6:]) + "\n")
    # A run recorded twice counts once, with its later value.
    (tmp_path / "no_alignment.jsonl").write_text(lines[5] + "\n" + lines[5].replace("1.2", "1.1") + "\n")
    # A run whose epochs an extra train argument changed (`-- --num_train_epochs 5`) says so.
    shortened = make_record("default", "muv", "random_0", 0.70, epochs=5.0, overrides={"num_train_epochs": 10})
    # ... also where the config sets the epochs for every dataset (the command then names them twice).
    command = "python scripts/train.py --dataset_name tox21 --num_train_epochs 30 --num_train_epochs 15"
    halved = make_record("default", "tox21", "random_0", 0.80, epochs=15.0, command=command)
    # Runs of one dataset recorded under two versions of its per-dataset options name their splits.
    earlier = make_record("default", "muv", "random_1", 0.72, epochs=5.0, overrides={"num_train_epochs": 5})
    with (tmp_path / "default.jsonl").open("a") as results:
        results.write("\n".join(json.dumps(r) for r in (shortened, halved, earlier)) + "\n")

    loaded = benchmark.load_records(tmp_path)
    report = benchmark.render_markdown(loaded, tmp_path)
    assert len(loaded) == 11
    assert "| tox21 | roc_auc ↑ | 0.800 | 1 | – | 15 | 10 | random_0: 15 epochs by an extra argument |" in report
    assert (
        "| muv | roc_auc ↑ | 0.710 ± 0.014 | 2 | – | 5 | 10 | per-dataset: num_train_epochs=10 (random_0); "
        "per-dataset: num_train_epochs=5 (random_1); random_0: 5 epochs by an extra argument |" in report
    )
    # Paired with the default on the splits both ran (esol has no default run to pair with).
    assert "| no_cross_attention | bace | roc_auc ↑ | 2 | 0.820 | 0.820 | +0.000 | 1 of 2 | +0.000 |" in report
    assert "| no_alignment | esol |" not in report
    assert "| bace | roc_auc ↑ | 0.840 ± 0.040 | 3 | 0.700 | 30 | 10 |  |" in report
    assert (
        "| hiv | roc_auc ↑ | 0.750 | 1 | – | 10 | 10 | per-dataset: num_train_epochs=10; "
        "data-parallel (--processes): random_0: 2 processes |" in report
    )
    assert "| esol | rmse ↓ | 1.100 | 1 | – | 30 | 10 |  |" in report
    assert "**0.914 ± 0.003** (paper)" in report and "default: 0.840 ± 0.040 (n=3)" in report
    assert "| graph_only | `{" in report and "not yet available" not in report
    assert report.index("## Results: default") < report.index("## Results: no_alignment")
    assert benchmark.render_markdown(list(reversed(loaded)), tmp_path) == report
    # The default's protocol runs with no record are named (an ablation's missing runs are not).
    missing = report[report.index("Not run yet: ") :].splitlines()[0]
    assert missing.startswith("Not run yet: bbbp (random_0, random_1, random_2, scaffold); clintox (")
    assert "bace" not in missing and "hiv (random_1, random_2, scaffold)" in missing
    assert report.count("Not run yet") == 1


def test_report_tabulates_the_prototype_count_sweep(benchmark, tmp_path):
    records = [
        make_record("default", "esol", "random_0", 0.60, metric="rmse", valid_value=0.50),
        make_record("default", "esol", "random_1", 0.70, metric="rmse", valid_value=0.70),
        make_record("default", "esol", "scaffold", 1.00, metric="rmse"),
        make_record("prototypes_3", "esol", "random_0", 0.65, metric="rmse", valid_value=0.55),
        make_record("no_alignment", "esol", "random_0", 0.90, metric="rmse", valid_value=0.80),
        make_record("prototypes_7", "bace", "random_0", 0.80),
    ]
    report = benchmark.render_markdown(records, tmp_path)

    start = report.index("## Prototype count N")
    table = report[start : report.index("\n## ", start)]
    # Random splits only; other ablations are not a prototype count; bace has one N, so no sweep.
    assert "| esol | rmse ↓ | 3 | 0.650 | 1 | 0.550 |\n| esol | rmse ↓ | 5 | 0.650 ± 0.071 | 2 | 0.600 |" in table
    assert "| bace |" not in table and "0.900" not in table
    assert "| prototypes_3 | esol | rmse ↓ | 1 | 0.600 | 0.650 | +0.050 | 0 of 1 | +0.050 |" in report


def test_report_counts_each_configuration_across_datasets(benchmark, tmp_path):
    records = [
        make_record("default", "bace", "random_0", 0.80),
        make_record("default", "bace", "random_1", 0.84),
        make_record("default", "esol", "random_0", 0.60, metric="rmse"),
        # bace: better on one split, worse on the test mean, better on the validation mean; esol: a lower RMSE
        # is better.
        make_record("no_alignment", "bace", "random_0", 0.82, valid_value=0.90),
        make_record("no_alignment", "bace", "random_1", 0.80, valid_value=0.78),
        make_record("no_alignment", "esol", "random_0", 0.55, metric="rmse", valid_value=0.50),
        # No default run on bbbp: not paired, not counted.
        make_record("no_alignment", "bbbp", "random_0", 0.99),
    ]
    report = benchmark.render_markdown(records, tmp_path)

    start = report.index("## Across datasets")
    table = report[start : report.index("\n## ", start)]
    assert "| no_alignment | bace, esol | 1 of 2 | 2 of 3 | 2 of 2 |" in table
    assert "bbbp" not in table


def test_report_shows_the_ratios_of_a_bench_speed_run(benchmark, tmp_path):
    speed_dir = tmp_path / "speed"
    speed_dir.mkdir()
    ours = {
        "seconds_per_epoch": 30.0,
        "best_epoch": 4,
        "time_to_best_validation_s": 120.0,
        "peak_rss_mb": 1700,
        "test_roc_auc": 0.85,
    }
    ours_bf16 = {**ours, "seconds_per_epoch": 15.0, "time_to_best_validation_s": 60.0, "test_roc_auc": 0.84}
    theirs = {
        "seconds_per_epoch": 3.0,
        "best_epoch": 20,
        "time_to_best_validation_s": 60.0,
        "peak_rss_mb": 800,
        "test_roc_auc": 0.86,
    }
    summary = {
        "git_commit": "abc",
        "hardware": make_record("default", "bace", "random_0", 0.8)["hardware"],
        "featurization_per_core_vs_from_smiles": 2.2,
        "prediction_vs_bare_text_model": {"float32": 0.71, "bfloat16": 0.75},
        "training": {
            "bace": {
                "protomol": {"default": ours, "bf16": ours_bf16},
                "chemprop": theirs,
                "protomol_over_chemprop": {
                    "default": {"time_to_best_validation": 2.0, "seconds_per_epoch": 10.0},
                    "bf16": {"time_to_best_validation": 1.0, "seconds_per_epoch": 5.0},
                },
            }
        },
        "chemprop": "ran",
        "inference": {
            "protomol_predict_molecules_per_s": {"float32": 60.0, "bfloat16": 120.0},
            "chemprop_predict": {"molecules": 9998, "seconds": 35.0, "molecules_per_s": 285.7},
            "protomol_over_chemprop": {"float32": 0.21, "bfloat16": 0.42},
        },
    }
    (speed_dir / "speed.json").write_text(json.dumps(summary))

    report = benchmark.render_markdown([], tmp_path)
    assert "## Speed against chemprop, in one run" in report and "Speed on SPEED" not in report
    assert "| bace random_0, default: time to best validation (s) | 120.0 | 60.0 | 2.0 |" in report
    assert "| bace random_0, bf16: seconds per epoch | 15.0 | 3.0 | 5.0 |" in report
    assert "| bace random_0, bf16: peak RSS (MB), best epoch, roc_auc | 1700, 4, 0.84 | 800, 20, 0.86 | |" in report
    assert (
        "ProtoMol in float32 (molecules/s, start-up included; chemprop on the 9,998 parsable ones) | 60.0 | 285.7 | 0.21 |"
        in report
    )
    assert (
        "ProtoMol in bfloat16 (molecules/s, start-up included; chemprop on the 9,998 parsable ones) | 120.0 | 285.7 | 0.42 |"
        in report
    )
    assert "Prediction from SMILES at 71% in float32, 75% in bfloat16 of the bare text model" in report


def test_bench_speed_compares_the_mean_over_several_splits(monkeypatch, benchmark, tmp_path):
    # Where the best epoch lands varies much between splits, so several splits are averaged, and each is shown.
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    bench_speed = load_script("bench_speed")
    ours = bench_speed.mean_training_speed(
        [
            make_record("small", "bace", "random_0", 0.8, best_epoch=10.0, epochs_run=20.0, train_wall_s=80.0),
            make_record("small", "bace", "random_1", 0.9, best_epoch=20.0, epochs_run=30.0, train_wall_s=60.0),
        ]
    )
    assert ours["per_split"]["random_0"]["time_to_best_validation_s"] == 40.0
    assert ours["per_split"]["random_1"]["time_to_best_validation_s"] == 40.0
    assert ours["seconds_per_epoch"] == 3.0 and ours["best_epoch"] == 15.0 and ours["test_roc_auc"] == 0.85
    chemprop = [
        make_record("chemprop_defaults", "bace", split, 0.8, system="chemprop", best_epoch=best, seconds_per_epoch=2.0)
        for split, best in (("random_0", 25), ("random_1", 49))
    ]
    theirs = bench_speed.mean_training_speed(chemprop)
    assert theirs["time_to_best_validation_s"] == 74.0
    assert bench_speed.mean_training_speed(chemprop[:1]) == theirs["per_split"]["random_0"]

    speed_dir = tmp_path / "speed"
    speed_dir.mkdir()
    entry = {
        "splits": ["random_0", "random_1"],
        "protomol": {"small": ours},
        "chemprop": theirs,
        "protomol_over_chemprop": {"small": {"time_to_best_validation": 0.54, "seconds_per_epoch": 1.5}},
    }
    summary = {
        "git_commit": "abc",
        "hardware": make_record("default", "bace", "random_0", 0.8)["hardware"],
        "featurization_per_core_vs_from_smiles": 2.2,
        "prediction_vs_bare_text_model": {"float32": 0.71},
        "training": {"bace": entry},
        "chemprop": "ran",
        "inference": {"protomol_predict_molecules_per_s": {"float32": 60.0}},
    }
    (speed_dir / "speed.json").write_text(json.dumps(summary))
    report = benchmark.render_markdown([], tmp_path)
    assert "| bace mean over random_0, random_1, small: time to best validation (s) | 40.0 | 74.0 | 0.54 |" in report
    assert "| bace random_1, small: best epoch, time to best validation (s) | 20.0, 40.0 | 49, 98.0 | |" in report


def test_report_times_the_training_runs_of_a_gpu_folder(benchmark, tmp_path):
    gpu_dir = tmp_path / "h200"
    gpu_dir.mkdir()
    run = make_record(
        "default",
        "hiv",
        "random_0",
        0.77,
        epochs_run=2.0,
        train_wall_s=154.0,
        wall_s=203.0,
        peak_rss_mb=5478.0,
        command="python scripts/train.py --dataset_name hiv --split_file random_0 --output_dir /tmp/x --bf16",
    )
    launched = dict(
        run, command="accelerate launch --config_file c.yaml scripts/train.py --dataset_name hiv --output_dir /tmp/y"
    )
    (gpu_dir / "train_hiv.jsonl").write_text(json.dumps(run) + "\n" + json.dumps(launched) + "\n")

    report = benchmark.render_markdown([], tmp_path)
    # The GPU folder's runs are timed in its own section, not counted as results of the default config.
    assert "## Speed on H200" in report and "## Results: default" not in report
    assert "| hiv | random_0 | 2 | 77.0 | 203 | 5,478 | roc_auc 0.770 | `--bf16` |" in report
    assert "| roc_auc 0.770 | `accelerate launch --config_file c.yaml scripts/train.py` |" in report
