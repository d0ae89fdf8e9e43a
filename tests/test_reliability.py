"""Loading refuses checkpoints that do not match the code; no pickle anywhere; bad input gives one line, not a traceback."""

import json
import logging
import re
import subprocess
import sys

import pytest
import torch
from conftest import FIXTURES, REPO, tiny_config
from safetensors.torch import load_file, save_file

from protomol_hf import ProtoMolConfig, ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.cli import main


@pytest.fixture
def checkpoint(tmp_path, tokenizer):
    """A saved two-task classifier with its processor."""
    model = ProtoMolForMolecularPropertyPrediction(tiny_config(num_tasks=2, task_names=["a", "b"]))
    directory = tmp_path / "checkpoint"
    model.save_pretrained(directory)
    ProtoMolProcessor(tokenizer, max_text_length=32).save_pretrained(directory)
    return directory


def edit_config(directory, **changes):
    config = json.loads((directory / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (directory / "config.json").write_text(json.dumps(config))


def test_saved_config_records_the_checkpoint_format(checkpoint):
    assert json.loads((checkpoint / "config.json").read_text())["checkpoint_format_version"] == 1


def test_newer_checkpoint_format_is_refused(checkpoint):
    edit_config(checkpoint, checkpoint_format_version=2)
    with pytest.raises(ValueError, match=r"checkpoint format 2, newer than the 1 this code reads: upgrade protomol_hf"):
        ProtoMolConfig.from_pretrained(checkpoint)


@pytest.mark.parametrize("key", ["num_tasks", "hidden_size", "problem_type"])
def test_config_missing_a_saved_key_is_refused(checkpoint, key):
    edit_config(checkpoint, **{key: None})
    with pytest.raises(ValueError, match=rf"the ProtoMol config lacks {key}: it was not written by"):
        ProtoMolForMolecularPropertyPrediction.from_pretrained(checkpoint)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_task_count_differing_from_the_weights_names_the_weights(checkpoint):
    edit_config(checkpoint, num_tasks=3, num_labels=3, task_names=["a", "b", "c"], id2label=None, label2id=None)
    # transformers logs its loading report (here: weights re-initialized) to this logger.
    loading_log, records = logging.getLogger("transformers.modeling_utils"), _Records()
    loading_log.addHandler(records)
    try:
        with pytest.raises(ValueError) as raised:
            ProtoMolForMolecularPropertyPrediction.from_pretrained(checkpoint)
        message = str(raised.value)
        assert "the weights do not match the config" in message and "num_tasks=3" in message
        assert "predictor.weight has shape (2, 64) in the checkpoint but (3, 64) under the config" in message
        # The error replaces the report, which would first say the weights were re-initialized.
        assert not any("Reinit" in logged for logged in records.messages)
        # Asked to re-initialize them, the load goes on and the report says which weights.
        ProtoMolForMolecularPropertyPrediction.from_pretrained(checkpoint, ignore_mismatched_sizes=True)
        assert any("Reinit" in logged for logged in records.messages)
    finally:
        loading_log.removeHandler(records)


def test_weights_the_config_leaves_unused_are_refused(tmp_path):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config(problem_type="regression"))
    model.set_target_statistics(torch.tensor([[1.0], [2.0], [4.0]]))
    model.save_pretrained(tmp_path / "regression")
    # As a classifier the regression statistics would be dropped, and its outputs read as probabilities.
    with pytest.raises(ValueError, match=r"target_mean is in the checkpoint but not in the model this config builds"):
        ProtoMolForMolecularPropertyPrediction.from_pretrained(tmp_path / "regression", problem_type="classification")
    # Moving a model to another task on purpose: the regression statistics are dropped, nothing else differs.
    classifier, info = ProtoMolForMolecularPropertyPrediction.from_pretrained(
        tmp_path / "regression", problem_type="classification", allow_unused_weights=True, output_loading_info=True
    )
    assert info["unexpected_keys"] == {"target_mean", "target_std", "class_boundaries"}
    assert classifier.config.problem_type == "classification"


def test_missing_weights_are_refused_unless_allowed(checkpoint):
    weights = load_file(checkpoint / "model.safetensors")
    del weights["predictor.bias"]
    save_file(weights, checkpoint / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"predictor.bias is missing from the checkpoint"):
        ProtoMolForMolecularPropertyPrediction.from_pretrained(checkpoint)
    model, info = ProtoMolForMolecularPropertyPrediction.from_pretrained(
        checkpoint, allow_missing_weights=True, output_loading_info=True
    )
    assert info["missing_keys"] == {"predictor.bias"} and model.predictor.bias.shape == (2,)


def test_matching_checkpoint_loads_exactly(checkpoint):
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(checkpoint)
    saved = load_file(checkpoint / "model.safetensors")
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in saved.items())


def test_cli_reports_a_mismatched_checkpoint_in_one_line(checkpoint, tmp_path, capsys):
    edit_config(checkpoint, hidden_size=64, refiner_intermediate_size=64)
    molecules = tmp_path / "molecules.csv"
    molecules.write_text("smiles\nCCO\n")
    arguments = ["predict", "--model", str(checkpoint), "--input", str(molecules), "--output", str(tmp_path / "o.csv")]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    last_line = error.strip().splitlines()[-1]
    assert last_line.startswith("protomol: error: ") and "hidden_size=64" in last_line and "Traceback" not in error


def test_no_pickle_loading_in_the_package_or_scripts():
    scripts = [*sorted((REPO / "scripts").glob("*.py")), *sorted((REPO / "benchmarks").rglob("*.py"))]
    for path in [*sorted((REPO / "src" / "protomol_hf").glob("*.py")), *scripts]:
        source = path.read_text()
        assert not re.search(r"\bimport pickle|\bpickle\.load|\bdill\b|allow_pickle=True", source), path
        for call in re.findall(r"torch\.load\([^)]*\)", source):
            assert "weights_only=True" in call, (path, call)


def test_train_script_reports_bad_input_in_one_line_with_exit_code_2(tmp_path):
    command = [sys.executable, str(REPO / "scripts" / "train.py"), "--data_file", str(FIXTURES / "tiny_regression.csv")]
    command += ["--label_columns", "logS", "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("train.py: error: ")
    assert "label column(s) ['logS'] not found; columns are: 'smiles', 'target'" in result.stderr
    assert "Traceback" not in result.stderr


EVIL_PROCESSOR = """
import pathlib

pathlib.Path({marker!r}).write_text("the folder's code ran")

from protomol_hf import ProtoMolProcessor


class EvilProcessor(ProtoMolProcessor):
    pass
"""


@pytest.mark.parametrize(
    ("config_file", "changes"),
    [
        (
            "processor_config.json",
            {"processor_class": "EvilProcessor", "auto_map": {"AutoProcessor": "evil.EvilProcessor"}},
        ),
        ("tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}),
        ("config.json", {"auto_map": {"AutoModel": "evil.EvilModel"}}),
    ],
)
def test_the_command_line_runs_no_code_from_a_model_folder(checkpoint, tmp_path, capsys, config_file, changes):
    marker = tmp_path / "ran.txt"
    (checkpoint / "evil.py").write_text(EVIL_PROCESSOR.format(marker=str(marker)))
    config_path = checkpoint / config_file
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **changes}))
    smiles_csv = tmp_path / "in.csv"
    smiles_csv.write_text("smiles\nCCO\n")
    arguments = ["predict", "--model", str(checkpoint), "--input", str(smiles_csv), "--output", str(tmp_path / "o.csv")]
    assert main(arguments) == 2
    assert "asks for code of its own" in capsys.readouterr().err and "evil." in config_path.read_text()
    assert not marker.exists()
