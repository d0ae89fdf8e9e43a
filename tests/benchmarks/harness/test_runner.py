"""benchmarks.harness end to end and its runner: a real tiny run on BACE (record, skip when recorded, failure,
resume from a checkpoint), a config error before anything runs, and how parallel runs share the machine."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, TINY_MODEL_ARGS

from benchmarks.harness import cli, configs, runner

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


def run_harness(tmp_path, *args):
    """Run `python -m benchmarks.harness` with its results, models and report in `tmp_path`, which is also the
    working folder: the repository goes on PYTHONPATH, for `benchmarks` to import from there."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.harness",
        "--results_dir",
        str(tmp_path / "results"),
        "--output_root",
        str(tmp_path / "runs"),
        "--docs_file",
        str(tmp_path / "benchmarks.md"),
        *args,
    ]
    module_path = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=module_path)
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


def test_from_scratch_deletes_the_checkpoints_of_an_interrupted_run(tmp_path):
    run = configs.PlannedRun("bace", "random_0", 0, 1.0, -1, {}, tmp_path / "run", [])
    assert runner.interrupted_checkpoint(run) is None  # never started
    for step in (3, 12):
        (run.output_dir / f"checkpoint-{step}").mkdir(parents=True)
    assert runner.interrupted_checkpoint(run) == run.output_dir / "checkpoint-12"
    assert runner.interrupted_checkpoint(run, from_scratch=True) is None
    assert not list(run.output_dir.glob("checkpoint-*"))


def test_parallel_runs_share_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    assert runner.training_environment(1) is None
    assert runner.training_environment(2)["OMP_NUM_THREADS"] == "4"
    assert runner.training_environment(16)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's choice wins
    assert runner.training_environment(2) is None
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--jobs", "0"])


def test_unknown_config_option_fails_before_running(tmp_path):
    (tmp_path / "typo.json").write_text(json.dumps({"cross_atention": "none"}))
    result = run_harness(tmp_path, "--config", "typo.json", "--datasets", "bace", "--splits", "random_0")
    assert result.returncode == 2
    assert "cross_atention" in result.stderr and "did you mean cross_attention" in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()
