"""benchmarks.harness.configs: configs loaded and checked against scripts/train.py, and runs planned from them
(the shipped configs on every dataset and split, data-parallel launches, extra arguments)."""

import json
import shlex

import pytest

from benchmarks import CONFIG_DIR
from benchmarks.harness import configs, runner


def test_data_parallel_runs_launch_with_accelerate_and_split_the_batch(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 8)
    config = configs.load_config("default", tmp_path)
    (run,) = configs.plan_runs(config, ["bace"], ["random_0"], [], tmp_path, processes=2)
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
    assert runner.training_environment(2 * run.processes)["OMP_NUM_THREADS"] == "2"
    (single,) = configs.plan_runs(config, ["bace"], ["random_0"], [], tmp_path)
    assert single.argv("python")[1] == "scripts/train.py" and "--per_device_train_batch_size" not in single.command
    with pytest.raises(configs.ConfigError, match="does not divide among 3 processes"):
        configs.plan_runs(config, ["bace"], ["random_0"], [], tmp_path, processes=3)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"cross_attention": "sideways"}, "invalid choice: 'sideways'"),
        ({"output_dir": "elsewhere"}, "set by the harness"),
        ({"per_dataset": {"bacee": {"num_train_epochs": 1}}}, "unknown datasets: bacee"),
        ({"per_dataset": {"bace": {"num_train_epoch": 1}}}, 'config bad (per_dataset "bace"): not scripts/train.py'),
    ],
)
def test_invalid_configs_are_rejected(tmp_path, config, message):
    (tmp_path / "bad.json").write_text(json.dumps(config))
    loaded = configs.load_config("bad.json", tmp_path)
    with pytest.raises(configs.ConfigError) as error:
        configs.plan_runs(loaded, ["bace"], ["random_0"], [], tmp_path)
    assert message in str(error.value)


def test_extra_arguments_cannot_override_the_harness_and_repeats_run_once(tmp_path):
    config = configs.load_config("default", tmp_path)
    # After the config's options these would win: a BBBP score recorded as BACE's.
    for extra in (["--dataset_name", "bbbp"], ["--output-dir=elsewhere"]):
        with pytest.raises(configs.ConfigError, match="set by the harness, remove from the arguments after --"):
            configs.plan_runs(config, ["bace"], ["random_0"], extra, tmp_path)
    runs = configs.plan_runs(config, ["bace", "bace"], ["random_0", "random_0"], [], tmp_path)
    assert len(runs) == 1


def test_a_cycle_of_extends_and_a_broken_results_line_are_one_line_errors(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"extends": "b.json"}))
    (tmp_path / "b.json").write_text(json.dumps({"extends": "a.json"}))
    with pytest.raises(configs.ConfigError, match=r"configs extend each other in a cycle: a.json -> b.json -> a.json"):
        configs.load_config("a.json", tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    (results / "cut.jsonl").write_text('{"system": "protomol"}\n{"system": "prot\n')
    with pytest.raises(configs.ConfigError, match=r"cut.jsonl, line 2: not a JSON record"):
        runner.read_jsonl(results / "cut.jsonl")


def test_shipped_configs_are_valid_for_every_dataset_and_split(tmp_path):
    names = sorted(path.stem for path in CONFIG_DIR.glob("*.json"))
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
        runs = configs.plan_runs(configs.load_config(name, tmp_path), datasets, ["random_0", "scaffold"], [], tmp_path)
        assert len(runs) == 2 * len(datasets)
    default_runs = configs.plan_runs(
        configs.load_config("default", tmp_path), ["bace", "hiv"], ["random_0"], [], tmp_path
    )
    assert [(run.epochs, run.overrides) for run in default_runs] == [(30, {}), (5, {"num_train_epochs": 5})]
    ablation = configs.load_config("prototypes_3", tmp_path)
    assert ablation.options_for("hiv") == {
        "num_train_epochs": 5,
        "early_stopping_patience": 10,
        "num_prototypes_per_class": 3,
        "prototype_top_k": 3,
    }
