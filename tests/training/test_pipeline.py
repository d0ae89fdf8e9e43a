"""scripts/train.py end to end on 40-molecule CSVs: results, reload, loss decrease, resume, bad rows, launchers."""

import dataclasses
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES, REPO, run_without_protomol_hf, train, train_command
from safetensors.torch import load_file

from protomol_hf.cli import main
from protomol_hf.configuration_protomol import ProtoMolConfig
from protomol_hf.data import random_split, resolve_split_file
from protomol_hf.metrics import MoleculeNetMetric
from protomol_hf.training import ModelArguments, check_split


def test_model_arguments_are_the_config_options_with_the_config_defaults():
    """Every model option of train.py reaches ProtoMolConfig unchanged: an option that ProtoMolConfig does not
    have, or a default that differs from the config's, fails here."""
    arguments = ModelArguments()
    config_kwargs = arguments.config_kwargs()
    config = ProtoMolConfig(**config_kwargs)
    defaults = ProtoMolConfig()
    for name, value in config_kwargs.items():
        assert getattr(config, name) == value
        assert getattr(defaults, name) == value, name


def test_config_overrides_reach_the_config_options_training_leaves_to_the_user():
    options = ModelArguments(
        config_overrides="readout=sum,lora_rank=16,alignment_direction=graph_to_text"
    ).config_kwargs()
    assert (options["readout"], options["lora_rank"], options["alignment_direction"]) == ("sum", 16, "graph_to_text")
    assert ProtoMolConfig(**options).readout == "sum"
    for override, message in [
        ("hidden_size=64", "give 'hidden_size' as --hidden_size"),
        ("num_tasks=2", "'num_tasks=2' is not key=value"),
        ("no_such_option=1", "'no_such_option=1' is not key=value"),
        ("readout", "'readout' is not key=value"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            ModelArguments(config_overrides=override).config_kwargs()


def train_losses(output_dir):
    """Training loss per logged epoch, from the trainer state saved with the final model."""
    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


@pytest.mark.parametrize(("csv", "metric"), [("tiny_classification.csv", "roc_auc"), ("tiny_regression.csv", "rmse")])
def test_train_script_trains_saves_and_reports(tmp_path, tiny_text_model, csv, metric):
    output_dir = tmp_path / "model_out"
    result = train(
        tmp_path,
        tiny_text_model,
        "--data_file",
        str(FIXTURES / csv),
        "--output_dir",
        str(output_dir),
        "--num_train_epochs",
        "6",
        "--save_total_limit",
        "1",
        "--early_stopping_patience",
        "10",
    )
    results = json.loads((output_dir / "results.json").read_text())
    assert results["metric"] == metric
    # Early stopping watches the epochs only, not the final "valid_"-prefixed evaluation.
    assert "early stopping required" not in result.stderr
    assert results["task_type"] == ("classification" if metric == "roc_auc" else "regression")
    assert math.isfinite(results["valid"][metric]) and math.isfinite(results["test"][metric])
    assert set(results) >= {"dataset", "split", "valid", "test", "best_epoch", "train_wall_s"}
    assert f'"test_{metric}"' in result.stdout
    split = json.loads((output_dir / "split.json").read_text())
    assert sum(len(split[part]) for part in ("train", "valid", "test")) == 40

    # The test predictions are saved chemprop-style and reproduce the reported test metric.
    predictions = pd.read_csv(output_dir / "test_predictions.csv")
    task = "label" if metric == "roc_auc" else "target"
    assert list(predictions.columns) == ["row", "smiles", f"{task}_label", f"{task}_predicted"]
    assert sorted(predictions["row"]) == sorted(split["test"])
    rescored = MoleculeNetMetric(task_type=results["task_type"]).compute(
        predictions=predictions[[f"{task}_predicted"]].to_numpy(), references=predictions[[f"{task}_label"]].to_numpy()
    )
    assert rescored[metric] == pytest.approx(results["test"][metric], abs=1e-5)

    losses = train_losses(output_dir)
    assert len(losses) == 6 and losses[-1] < losses[0]
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    # Every logged window carries the three loss components, averaged over its steps.
    assert all(
        math.isfinite(entry[name])
        for entry in logged
        for name in ("prediction_loss", "alignment_loss", "contrastive_loss")
    )

    # The saved folder predicts in a process that cannot import protomol_hf.
    stdout = run_without_protomol_hf(
        f"""
        import torch
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(output_dir)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(output_dir)!r}, trust_remote_code=True)
        with torch.no_grad():
            print(model(**processor(smiles=["CCO", "c1ccccc1N"], return_tensors="pt")).logits.shape)
        """,
        cwd=tmp_path,
    )
    assert "torch.Size([2, 1])" in stdout


def test_bf16_autocast_trains_on_cpu_and_saves_float32_weights(tmp_path, tiny_text_model):
    """`--bf16` without a GPU: the Trainer's CPU autocast runs the matrix products in bfloat16 (the speed option
    for CPUs with AVX512-BF16 or AMX); the loss still falls and the saved weights stay float32."""
    output_dir = tmp_path / "bf16"
    data = ["--data_file", str(FIXTURES / "tiny_regression.csv"), "--output_dir", str(output_dir)]
    train(tmp_path, tiny_text_model, *data, "--num_train_epochs", "6", "--save_total_limit", "1", "--bf16")
    losses = train_losses(output_dir)
    assert len(losses) == 6 and all(map(math.isfinite, losses)) and losses[-1] < losses[0]
    assert math.isfinite(json.loads((output_dir / "results.json").read_text())["test"]["rmse"])
    weights = load_file(output_dir / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values() if tensor.is_floating_point()} == {torch.float32}


def test_training_resumes_from_a_checkpoint(tmp_path, tiny_text_model):
    output_dir = tmp_path / "resumed"
    common = [
        "--data_file",
        str(FIXTURES / "tiny_classification.csv"),
        "--output_dir",
        str(output_dir),
        "--save_total_limit",
        "5",
    ]
    train(tmp_path, tiny_text_model, *common, "--num_train_epochs", "2")
    checkpoint = output_dir / "checkpoint-8"  # 2 epochs x 4 batches of 8 (32 training molecules)
    assert checkpoint.is_dir()
    result = train(
        tmp_path, tiny_text_model, *common, "--num_train_epochs", "3", "--resume_from_checkpoint", str(checkpoint)
    )
    state = json.loads((output_dir / "checkpoint-12" / "trainer_state.json").read_text())
    assert state["global_step"] == 12 and state["epoch"] == 3
    # Epochs 1-2 came from the checkpoint: the resumed run logged only epoch 3's training loss.
    assert [entry["epoch"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]
    assert "test_roc_auc" in result.stdout


def test_ensemble_trains_members_with_consecutive_seeds_and_predicts_mean_and_std(tmp_path, tiny_text_model):
    output_dir = tmp_path / "ensemble"
    csv = FIXTURES / "tiny_classification.csv"
    arguments = ["--data_file", str(csv), "--output_dir", str(output_dir), "--num_train_epochs", "2"]
    result = train(tmp_path, tiny_text_model, *arguments, "--ensemble_size", "2", "--seed", "5")
    ensemble = json.loads((output_dir / "ensemble.json").read_text())
    assert ensemble["members"] == ["member_0", "member_1"] and ensemble["seeds"] == [5, 6]
    members = [json.loads((output_dir / name / "results.json").read_text()) for name in ensemble["members"]]
    assert ensemble["member_test"]["values"] == [member["test"]["roc_auc"] for member in members]
    splits = [json.loads((output_dir / name / "split.json").read_text()) for name in ensemble["members"]]
    assert splits[0]["test"] == splits[1]["test"]  # one split, different seeds
    tables = [pd.read_csv(output_dir / name / "test_predictions.csv") for name in ensemble["members"]]
    assert not np.allclose(tables[0]["label_predicted"], tables[1]["label_predicted"])
    averaged = MoleculeNetMetric().compute(
        predictions=np.mean([t[["label_predicted"]].to_numpy() for t in tables], axis=0),
        references=tables[0][["label_label"]].to_numpy(),
    )
    assert ensemble["test"]["roc_auc"] == pytest.approx(averaged["roc_auc"])
    assert f'"test_roc_auc": {ensemble["test"]["roc_auc"]}' in result.stdout

    predictions = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(output_dir), "--input", str(csv), "--output", str(predictions)]) == 0
    table = pd.read_csv(predictions)
    assert list(table.columns) == ["smiles", "label", "label_predicted", "label_predicted_std", "error"]
    assert len(table) == 40 and (table["label_predicted_std"] > 0).all()


TIMINGS = ("runtime", "per_second", "flos", "wall_s")


def without_timings(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if not any(timing in key for timing in TIMINGS)}


def logged_history(output_dir):
    """Per-epoch training losses and validation metrics of a finished run, without timings."""
    history = json.loads((Path(output_dir) / "trainer_state.json").read_text())["log_history"]
    return [without_timings(entry) for entry in history]


def test_same_seed_gives_identical_training(tmp_path, tiny_text_model):
    common = ["--data_file", str(FIXTURES / "tiny_regression.csv"), "--num_train_epochs", "3", "--seed", "7"]
    for name in ("first", "second"):
        train(tmp_path, tiny_text_model, *common, "--output_dir", str(tmp_path / name))
    first, second = (json.loads((tmp_path / name / "results.json").read_text()) for name in ("first", "second"))
    assert without_timings(first["test"]) == without_timings(second["test"])
    assert without_timings(first["valid"]) == without_timings(second["valid"])
    assert logged_history(tmp_path / "first") == logged_history(tmp_path / "second")


@pytest.mark.slow
def test_killed_training_resumes_to_the_result_of_an_uninterrupted_run(tmp_path, tiny_text_model):
    common = ["--data_file", str(FIXTURES / "tiny_classification.csv"), "--num_train_epochs", "5"]
    common += ["--save_total_limit", "10", "--seed", "3"]
    train(tmp_path, tiny_text_model, *common, "--output_dir", str(tmp_path / "uninterrupted"))

    killed = tmp_path / "killed"
    command, env = train_command(tmp_path, tiny_text_model, *common, "--output_dir", str(killed))
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_checkpoint = killed / "checkpoint-4"  # epoch 1: 4 batches of 8 of the 32 training molecules
    deadline = time.monotonic() + 300
    # trainer_state.json is the last file a checkpoint gets: the checkpoint is complete once it exists.
    while not (first_checkpoint / "trainer_state.json").exists() and process.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.02)
    process.kill()
    assert process.wait() == -signal.SIGKILL, "training ended before it could be killed"
    assert not (killed / "results.json").exists()

    train(
        tmp_path,
        tiny_text_model,
        *common,
        "--output_dir",
        str(killed),
        "--resume_from_checkpoint",
        str(first_checkpoint),
    )
    expected, resumed = (
        json.loads((tmp_path / name / "results.json").read_text()) for name in ("uninterrupted", "killed")
    )
    assert without_timings(resumed["test"]) == pytest.approx(without_timings(expected["test"]), abs=1e-6)
    assert without_timings(resumed["valid"]) == pytest.approx(without_timings(expected["valid"]), abs=1e-6)
    assert resumed["best_epoch"] == expected["best_epoch"]
    # The killed attempt's training time up to its checkpoint came back with it (restored callback state).
    assert resumed["resumed_train_s"] > 0 and expected["resumed_train_s"] == 0
    uninterrupted_losses = train_losses(tmp_path / "uninterrupted")
    assert train_losses(killed) == pytest.approx(uninterrupted_losses, abs=1e-6) and len(uninterrupted_losses) == 5


def test_check_split_rejects_empty_parts_and_single_class_evaluation_parts(tiny_classification):
    split = random_split(tiny_classification, seed=0)
    check_split(tiny_classification, split)
    with pytest.raises(ValueError, match=r"the valid and test parts are empty \(train/valid/test hold 40/0/0 of 40"):
        check_split(tiny_classification, {"train": np.arange(40), "valid": np.arange(0), "test": np.arange(0)})
    negatives = np.flatnonzero(tiny_classification.labels[:, 0] == 0)
    single_class = {**split, "valid": negatives[:4]}
    with pytest.raises(ValueError, match="no task has both classes among the 4 validation rows"):
        check_split(tiny_classification, single_class)
    # A single-class test part cannot be scored (the test ROC-AUC would be NaN).
    with pytest.raises(ValueError, match=r"no task has both classes among the 3 test rows .* could not be scored"):
        check_split(tiny_classification, {**split, "test": negatives[:3]})


def test_a_bundled_split_name_without_a_bundled_set_is_explained():
    with pytest.raises(
        FileNotFoundError, match=r"split file not found: random_0 \(bundled split names .* need --dataset_name"
    ):
        resolve_split_file("random_0", dataset_name=None)
    with pytest.raises(FileNotFoundError, match=r"split file not found: absent\.json$"):
        resolve_split_file("absent.json", dataset_name=None)


def test_check_split_needs_both_classes_in_one_task_only(tiny_classification):
    # Two tasks: the first has one class in the validation rows, the second both (NaN elsewhere).
    labels = np.stack([np.zeros(len(tiny_classification)), np.tile([0.0, 1.0, np.nan, np.nan], 10)], axis=1)
    table = dataclasses.replace(tiny_classification, labels=labels, task_names=["a", "b"])
    check_split(table, {"train": np.arange(8, 40), "valid": np.arange(4), "test": np.arange(4, 8)})
    with pytest.raises(ValueError, match="no task has both classes"):
        check_split(table, {"train": np.arange(8, 40), "valid": np.array([0, 2, 3]), "test": np.arange(4, 8)})


def test_invalid_rows_are_reported_and_excluded(tmp_path, tiny_text_model):
    output_dir = tmp_path / "invalid"
    csv = tmp_path / "with_bad_rows.csv"
    good = (FIXTURES / "tiny_classification.csv").read_text().splitlines()
    csv.write_text("\n".join([*good[:3], "C1CC(C,1", ",0", "CCO,", "not_a_smiles,1", *good[3:]]) + "\n")
    result = train(
        tmp_path, tiny_text_model, "--data_file", str(csv), "--output_dir", str(output_dir), "--num_train_epochs", "1"
    )
    results = json.loads((output_dir / "results.json").read_text())
    excluded = {row["row"]: row["reason"] for row in results["excluded_rows"]}
    assert sorted(excluded) == [2, 3, 4, 5]
    assert "all labels missing" in excluded[4]
    assert "kept 40 of 44 rows" in result.stderr
    assert sum(results["num_molecules"].values()) == 40


def test_bundled_split_file_by_name(tmp_path, tiny_text_model):
    """`--split_file random_0` with a bundled dataset uses the benchmark split (sizes of bace random_0)."""
    output_dir = tmp_path / "bace"
    train(
        tmp_path,
        tiny_text_model,
        "--dataset_name",
        "bace",
        "--split_file",
        "random_0",
        "--output_dir",
        str(output_dir),
        "--max_steps",
        "2",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        "--load_best_model_at_end",
        "false",
        "--text_source",
        "smiles",
    )
    results = json.loads((output_dir / "results.json").read_text())
    assert results["num_molecules"] == {"train": 1211, "valid": 151, "test": 151}
    assert results["split"] == "random_0"


@pytest.mark.parametrize("cached", ["true", "false"])
def test_group_by_length_sampling_trains_and_keeps_test_predictions_in_order(tmp_path, tiny_text_model, cached):
    """`--train_sampling_strategy group_by_length` reads the `length` column (tokens per description), with the
    text-state cache and with tokens; the saved test predictions still follow the split's row order."""
    output_dir = tmp_path / "grouped"
    options = "--num_train_epochs 2 --per_device_train_batch_size 4 --train_sampling_strategy group_by_length"
    data = ["--data_file", str(FIXTURES / "tiny_classification.csv"), "--output_dir", str(output_dir)]
    train(tmp_path, tiny_text_model, *data, *options.split(), "--cache_text_features", cached)
    split = json.loads((output_dir / "split.json").read_text())
    predictions = pd.read_csv(output_dir / "test_predictions.csv")
    assert list(predictions["row"]) == split["test"]


LAUNCHERS = {
    "ddp": ["-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs" / "accelerate_ddp.yaml")],
    "zero3": ["-m", "accelerate.commands.launch", "--config_file", str(REPO / "configs" / "accelerate_zero3.yaml")],
}
# ZeRO-3 trains in bf16, as on GPUs: DeepSpeed then runs the model in bf16 without autocast, so any float32
# tensor left in the model (a buffer) breaks a matrix product. Without a GPU the training arguments turn on
# use_cpu themselves, which is what makes both launches join their gloo process group.
LAUNCH_TRAIN_ARGUMENTS = {"ddp": [], "zero3": ["--bf16"]}


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(LAUNCHERS))
def test_two_process_launch_trains_and_saves_a_loadable_model(tmp_path, tiny_text_model, mode):
    output_dir = tmp_path / f"launch_{mode}"
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    result = train(
        tmp_path,
        tiny_text_model,
        "--data_file",
        str(FIXTURES / "tiny_classification.csv"),
        "--output_dir",
        str(output_dir),
        "--num_train_epochs",
        "2",
        "--save_total_limit",
        "1",
        "--per_device_train_batch_size",
        "4",
        *LAUNCH_TRAIN_ARGUMENTS[mode],
        launcher=(sys.executable, *LAUNCHERS[mode]),
        env_extra={"CUDA_VISIBLE_DEVICES": ""},
    )
    assert "test_roc_auc" in result.stdout
    # The two processes share each epoch's batches (4 molecules each per step): half the steps of one process.
    num_train = len(json.loads((output_dir / "split.json").read_text())["train"])
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 2 * math.ceil(num_train / 8)
    from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor

    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(output_dir).float().eval()
    processor = ProtoMolProcessor.from_pretrained(output_dir)
    logits = model(**processor(smiles=["CCO", "c1ccccc1N"], return_tensors="pt")).logits
    assert logits.shape == (2, 1) and bool(logits.isfinite().all())


@pytest.mark.parametrize(("local_rank", "lent"), [(0, True), (1, False)])
def test_main_process_borrows_the_threads_of_processes_waiting_for_its_text_cache(monkeypatch, local_rank, lent):
    import torch

    from protomol_hf.training import ProtoMolTrainingArguments
    from protomol_hf.training.distributed import cores_of_waiting_processes

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    args = ProtoMolTrainingArguments(output_dir="unused")
    monkeypatch.setattr(ProtoMolTrainingArguments, "local_process_index", local_rank)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with cores_of_waiting_processes(args):
            inside = torch.get_num_threads()
        assert inside == (4 if lent else 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
