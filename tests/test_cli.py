"""The `protomol` command (train, predict, fingerprint, explain) and the API behind it, on tiny untrained models."""

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES, load_script, tiny_config

from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.cli import build_parser, main
from protomol_hf.ensemble import predict_smiles_ensemble
from protomol_hf.prediction import (
    PARALLEL_CHUNK_SIZE,
    InvalidRowError,
    embed_smiles,
    featurize_rows,
    length_sorted_batches,
    predict_smiles,
)
from protomol_hf.training import ProtoMolTrainingArguments

REPO = Path(__file__).resolve().parents[1]
# (smiles, name, weight): rows 1, 3 and 5 cannot be featurized.
ROWS = [
    ("CCO", "ethanol", "46.07"),
    ("C1CC(C", "broken ring", "1.50"),
    ("c1ccccc1O", "phenol", "94.11"),
    ("", "no smiles", ""),
    ("CC(=O)[O-].[Na+]", "sodium acetate", "82.03"),
    ("not_a_smiles", "words", "0"),
    ("CC(C)Cc1ccc(cc1)C(C)C(=O)O", "ibuprofen", "206.28"),
]
VALID_ROWS = [0, 2, 4, 6]
VALID_SMILES = [ROWS[row][0] for row in VALID_ROWS]


def save_model(directory, model, tokenizer):
    model.save_pretrained(directory)
    ProtoMolProcessor(tokenizer, max_text_length=32).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory, tokenizer):
    """Two classification tasks "a" and "b" (untrained weights)."""
    torch.manual_seed(0)
    model = ProtoMolForMolecularPropertyPrediction(tiny_config(num_tasks=2, task_names=["a", "b"]))
    return save_model(tmp_path_factory.mktemp("classifier"), model, tokenizer)


@pytest.fixture(scope="session")
def regressor_dir(tmp_path_factory, tokenizer):
    """One regression task "logS" with target statistics, so predictions are in the target's units."""
    torch.manual_seed(0)
    model = ProtoMolForMolecularPropertyPrediction(tiny_config(problem_type="regression", task_names=["logS"]))
    model.set_target_statistics(np.array([[-6.0], [-3.0], [-1.0], [0.5]]))
    return save_model(tmp_path_factory.mktemp("regressor"), model, tokenizer)


@pytest.fixture
def molecules_csv(tmp_path):
    path = tmp_path / "molecules.csv"
    pd.DataFrame(ROWS, columns=["smiles", "name", "weight"]).to_csv(path, index=False)
    return path


def direct_logits(model_dir, smiles):
    """The saved model's logits for `smiles` in one processor call, the way the README shows."""
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(model_dir).eval()
    processor = ProtoMolProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        return model(**processor(smiles=smiles, return_tensors="pt"))


def read_raw(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_predict_keeps_every_row_and_names_the_errors(classifier_dir, molecules_csv, tmp_path, capsys):
    output = tmp_path / "out" / "predictions.csv"
    assert (
        main(["predict", "--model", str(classifier_dir), "--input", str(molecules_csv), "--output", str(output)]) == 0
    )

    raw = read_raw(output)
    assert list(raw.columns) == ["smiles", "name", "weight", "a", "b", "error"]
    assert raw[["smiles", "name", "weight"]].values.tolist() == [list(row) for row in ROWS]
    predictions = pd.read_csv(output)[["a", "b"]].to_numpy()
    assert np.isnan(predictions[[1, 3, 5]]).all()
    assert ((predictions[VALID_ROWS] >= 0) & (predictions[VALID_ROWS] <= 1)).all()
    assert raw["error"][VALID_ROWS].eq("").all()
    assert raw["error"][1] == "invalid SMILES: RDKit could not parse it"
    assert raw["error"][3] == "invalid SMILES: empty SMILES string"
    assert raw["error"][5].startswith("invalid SMILES")
    assert "predicted 4 of 7 rows; skipped 3 (see the error column)" in capsys.readouterr().out

    expected = torch.sigmoid(direct_logits(classifier_dir, VALID_SMILES).logits).numpy()
    np.testing.assert_allclose(predictions[VALID_ROWS], expected, atol=1e-6, rtol=0)


def test_regression_values_match_the_model_across_batches(regressor_dir, molecules_csv, tmp_path):
    output = tmp_path / "predictions.csv"
    args = ["predict", "--model", str(regressor_dir), "--input", str(molecules_csv), "--output", str(output)]
    assert main([*args, "--batch_size", "3"]) == 0
    values = pd.read_csv(output)["logS"].to_numpy()
    expected = direct_logits(regressor_dir, VALID_SMILES).logits[:, 0].numpy()
    np.testing.assert_allclose(values[VALID_ROWS], expected, atol=1e-6, rtol=0)
    assert np.isnan(values[[1, 3, 5]]).all()


def test_bfloat16_predictions_stay_close_to_float32(regressor_dir, molecules_csv, tmp_path):
    output = tmp_path / "predictions.csv"
    args = ["predict", "--model", str(regressor_dir), "--input", str(molecules_csv), "--output", str(output)]
    assert main([*args, "--dtype", "bfloat16"]) == 0
    values = pd.read_csv(output)["logS"].to_numpy()
    expected = direct_logits(regressor_dir, VALID_SMILES).logits[:, 0].numpy()
    # bf16 keeps 8 bits of mantissa: predictions agree to a few parts in a hundred, not bit for bit.
    np.testing.assert_allclose(values[VALID_ROWS], expected, rtol=0.05, atol=0.05)
    assert not np.array_equal(values[VALID_ROWS], expected)


def test_text_column_and_clashing_column_names(classifier_dir, tmp_path):
    """An empty text invalidates only its row; input columns named like a task or `error` are kept."""
    path, output = tmp_path / "texts.csv", tmp_path / "predictions.csv"
    texts = ["an alcohol", "  ", "a salt", "a drug"]
    pd.DataFrame({"SMILES": VALID_SMILES, "about": texts, "a": ["1", "0", "", "1"], "error": ["x"] * 4}).to_csv(
        path, index=False
    )
    args = ["predict", "--model", str(classifier_dir), "--input", str(path), "--output", str(output)]
    assert main([*args, "--smiles_column", "SMILES", "--text_column", "about"]) == 0
    raw = read_raw(output)
    assert list(raw.columns) == ["SMILES", "about", "a", "error", "a_predicted", "b", "error_predicted"]
    assert raw["a"].tolist() == ["1", "0", "", "1"] and raw["error"].tolist() == ["x"] * 4
    assert raw["error_predicted"].tolist() == ["", "text is empty", "", ""]
    assert raw["b"][1] == "" and raw["b"][0] != ""


def test_invalid_error_stops_at_the_first_bad_row(classifier_dir, molecules_csv, tmp_path, capsys):
    output = tmp_path / "predictions.csv"
    args = ["predict", "--model", str(classifier_dir), "--input", str(molecules_csv), "--output", str(output)]
    assert main([*args, "--invalid", "error"]) == 2
    error = capsys.readouterr().err
    assert "protomol: error: data row 1 of" in error and "RDKit could not parse it" in error
    assert not output.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--smiles_column": "SMILES"}, "has no SMILES column 'SMILES'; available columns: 'smiles', 'name', 'weight'"),
        ({"--text_column": "description"}, "has no text column 'description'"),
        ({"--input": "missing.csv"}, "input file not found: missing.csv"),
        ({"--model": "empty_model"}, "empty_model has no config.json"),
        ({"--model": "no_such_model"}, "model folder not found: no_such_model"),
        ({"--model": "bert_model"}, "bert_model holds a 'bert' model, not a ProtoMol one"),
        ({"--model": "weightless_model"}, "cannot load the model in weightless_model: "),
        ({"--input": "ragged.csv"}, "ragged.csv: row 0 has 3 fields but the header has 2 columns"),
        ({"--output": "."}, "--output . is a folder"),
        ({"--device": "gpu"}, "--device 'gpu' is not a torch device"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    classifier_dir, molecules_csv, tmp_path, monkeypatch, capsys, change, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty_model").mkdir()
    # A ProtoMol config without weights, a foreign model, and a first row with an extra (unquoted) field.
    (tmp_path / "weightless_model").mkdir()
    for name in ("config.json", "processor_config.json"):
        shutil.copy(classifier_dir / name, tmp_path / "weightless_model" / name)
    shutil.copytree(tmp_path / "weightless_model", tmp_path / "bert_model")
    (tmp_path / "bert_model" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "ragged.csv").write_text("smiles,name\nCCO,ethanol, absolute\nCCN,ethylamine\n")
    options = {"--model": str(classifier_dir), "--input": str(molecules_csv), "--output": "out.csv", **change}
    assert main(["predict", *[item for pair in options.items() for item in pair]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("protomol: error: ") and message in error and error.count("\n") == 1


def test_fingerprint_npz_holds_the_embedded_rows(classifier_dir, molecules_csv, tmp_path, capsys):
    output = tmp_path / "embeddings.npz"
    assert (
        main(["fingerprint", "--model", str(classifier_dir), "--input", str(molecules_csv), "--output", str(output)])
        == 0
    )
    arrays = np.load(output)
    hidden, prototypes = 32, 2 * 2 * 3  # tasks x classes x prototypes per class
    assert arrays["row_index"].tolist() == VALID_ROWS
    assert arrays["graph_embeds"].shape == arrays["text_embeds"].shape == (4, hidden)
    assert arrays["fused_embeds"].shape == (4, 2 * hidden)
    assert (
        arrays["graph_prototype_similarities"].shape == arrays["text_prototype_similarities"].shape == (4, prototypes)
    )
    assert [bool(error) for error in arrays["errors"]] == [False, True, False, True, False, True, False]
    assert "embedded 4 of 7 rows; skipped 3" in capsys.readouterr().out

    outputs = direct_logits(classifier_dir, VALID_SMILES)
    np.testing.assert_allclose(arrays["fused_embeds"], outputs.fused_embeds.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        arrays["text_prototype_similarities"],
        outputs.text_prototype_similarities.reshape(4, -1).numpy(),
        atol=1e-6,
        rtol=0,
    )


def test_fingerprint_npy_has_a_nan_row_per_invalid_molecule(classifier_dir, molecules_csv, tmp_path):
    output = tmp_path / "fused.npy"
    assert (
        main(["fingerprint", "--model", str(classifier_dir), "--input", str(molecules_csv), "--output", str(output)])
        == 0
    )
    fused = np.load(output)
    assert fused.shape == (7, 64)
    assert np.isnan(fused[[1, 3, 5]]).all() and np.isfinite(fused[VALID_ROWS]).all()


def test_fingerprint_rejects_other_file_types(classifier_dir, molecules_csv, capsys):
    assert (
        main(["fingerprint", "--model", str(classifier_dir), "--input", str(molecules_csv), "--output", "x.csv"]) == 2
    )
    assert "--output must end with .npz or .npy" in capsys.readouterr().err


def test_python_api_skips_or_raises(classifier_dir, tokenizer):
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(classifier_dir)
    processor = ProtoMolProcessor(tokenizer, max_text_length=32)
    smiles = [row[0] for row in ROWS]
    predictions, errors = predict_smiles(model, processor, smiles, batch_size=2)
    assert predictions.shape == (7, 2) and np.isnan(predictions[[1, 3, 5]]).all()
    assert [error is None for error in errors] == [True, False, True, False, True, False, True]
    embeddings, _ = embed_smiles(model, processor, smiles)
    assert embeddings["graph_embeds"].shape == (7, 32)
    with pytest.raises(InvalidRowError) as raised:
        predict_smiles(model, processor, smiles, invalid="error")
    assert raised.value.row == 1


def options_in_help(text):
    return set(re.findall(r"(?<![\w-])--\w+", text))


def test_train_has_the_options_of_the_train_script(capsys):
    train_script = load_script("train")
    with pytest.raises(SystemExit):
        train_script.main(["--help"])
    script_options = options_in_help(capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert options_in_help(capsys.readouterr().out) == script_options and len(script_options) > 50


def test_train_parses_into_the_training_dataclasses(monkeypatch, tmp_path, capsys):
    received = {}

    def fake_run_training(model_args, data_args, training_args):
        received.update(model=model_args, data=data_args, training=training_args)
        return {"metric": "roc_auc", "test": {"roc_auc": 0.75}}

    monkeypatch.setattr("protomol_hf.cli.train.run_training", fake_run_training)
    output_dir = str(tmp_path / "run")
    assert (
        main(
            [
                "train",
                "--dataset_name",
                "bace",
                "--hidden_size",
                "32",
                "--label_columns",
                "x",
                "y",
                "--no_cache_text_features",
                "--num_train_epochs",
                "3",
                "--output_dir",
                output_dir,
            ]
        )
        == 0
    )
    assert received["model"].hidden_size == 32 and received["model"].num_layers == 5
    assert received["data"].dataset_name == "bace" and received["data"].label_columns == ["x", "y"]
    assert received["data"].cache_text_features is False
    assert received["training"].num_train_epochs == 3.0 and received["training"].learning_rate == 8e-5
    assert '"test_roc_auc": 0.75' in capsys.readouterr().out


def test_train_script_refuses_unknown_options_and_a_missing_output_dir(capsys):
    train_script = load_script("train")
    for argv, message in (
        (["--data_file", "x.csv"], "the following arguments are required: --output_dir"),
        (["--data_file", "x.csv", "--output_dir", "out", "--labels", "y"], "unrecognized arguments: --labels y"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            train_script.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    # Built in Python, the arguments refuse to default to ./trainer_output as transformers' would.
    with pytest.raises(ValueError, match="--output_dir is required"):
        ProtoMolTrainingArguments()
    with pytest.raises(ValueError, match="--num_train_epochs must be positive"):
        ProtoMolTrainingArguments(output_dir="out", num_train_epochs=0)


@pytest.mark.parametrize(
    ("metric", "greater_is_better"),
    [("rmse", False), ("eval_mae", False), ("rmse_logS", False), ("roc_auc", True), ("roc_auc_weight_loss", True)],
)
def test_a_named_validation_metric_is_optimized_in_its_direction(metric, greater_is_better):
    """transformers would maximize every metric whose name does not end in "loss", RMSE too."""
    arguments = ProtoMolTrainingArguments(output_dir="out", metric_for_best_model=metric)
    assert arguments.greater_is_better is greater_is_better


def test_train_on_too_few_rows_exits_2_naming_the_split_sizes(tmp_path, capsys):
    csv = tmp_path / "four_rows.csv"
    csv.write_text("smiles,y\nCCO,1\nc1ccccc1,0\nCCC,0\nCCCl,1\n")
    arguments = ["train", "--data_file", str(csv), "--label_columns", "y", "--output_dir", str(tmp_path / "run")]
    assert main(arguments) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error == (
        "protomol: error: the valid and test parts are empty (train/valid/test hold 4/0/0 of 4 usable rows): "
        "add rows, or pass a --split_file whose three parts all hold rows"
    )
    assert not (tmp_path / "run").exists()


def test_train_refuses_more_text_tokens_than_the_text_model_has_positions(tmp_path, capsys):
    arguments = ["train", "--data_file", str(FIXTURES / "tiny_classification.csv"), "--output_dir", str(tmp_path)]
    assert main([*arguments, "--max_text_length", "1024"]) == 2
    assert "--max_text_length 1024 is more tokens than the text model has positions (512)" in capsys.readouterr().err


def test_every_option_is_explained_with_its_default():
    parser = build_parser()
    subcommands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert set(subcommands.choices) == {"train", "predict", "fingerprint", "explain"}
    for name in ("predict", "fingerprint", "explain"):
        help_text = " ".join(subcommands.choices[name].format_help().split())
        for action in subcommands.choices[name]._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            if not action.required:
                assert f"{' '.join(action.help.split())} (default: {action.default})" in help_text, (name, action.dest)


def test_installed_console_script_shows_the_subcommands():
    console_script = Path(sys.executable).with_name("protomol")
    result = subprocess.run([str(console_script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in ("train", "predict", "fingerprint", "explain"))


@pytest.fixture(scope="session")
def ensemble_dir(tmp_path_factory, tokenizer, classifier_dir):
    """The classifier and a differently seeded copy as the members of an ensemble folder."""
    directory = tmp_path_factory.mktemp("ensemble")
    shutil.copytree(classifier_dir, directory / "member_0")
    torch.manual_seed(1)
    other = ProtoMolForMolecularPropertyPrediction(tiny_config(num_tasks=2, task_names=["a", "b"]))
    save_model(directory / "member_1", other, tokenizer)
    (directory / "ensemble.json").write_text(json.dumps({"members": ["member_0", "member_1"]}))
    return directory


def test_ensemble_predict_reports_member_mean_and_std(ensemble_dir, molecules_csv, tmp_path, capsys):
    output = tmp_path / "ensemble.csv"
    assert main(["predict", "--model", str(ensemble_dir), "--input", str(molecules_csv), "--output", str(output)]) == 0
    table = pd.read_csv(output)
    assert list(table.columns) == ["smiles", "name", "weight", "a", "a_std", "b", "b_std", "error"]
    members = [
        torch.sigmoid(direct_logits(ensemble_dir / member, VALID_SMILES).logits).numpy()
        for member in ("member_0", "member_1")
    ]
    np.testing.assert_allclose(table.loc[VALID_ROWS, ["a", "b"]], np.mean(members, axis=0), atol=1e-6)
    np.testing.assert_allclose(table.loc[VALID_ROWS, ["a_std", "b_std"]], np.std(members, axis=0), atol=1e-6)
    assert (table.loc[VALID_ROWS, ["a_std", "b_std"]] > 0).all().all()
    assert table.loc[[1, 3, 5], ["a", "a_std"]].isna().all().all()
    assert "predicted 4 of 7 rows; skipped 3" in capsys.readouterr().out


def test_ensemble_of_unlike_members_or_a_broken_ensemble_file_is_refused(
    ensemble_dir, regressor_dir, molecules_csv, tmp_path, capsys
):
    mixed = tmp_path / "mixed"
    shutil.copytree(ensemble_dir, mixed)
    shutil.rmtree(mixed / "member_1")
    shutil.copytree(regressor_dir, mixed / "member_1")
    arguments = ["predict", "--model", str(mixed), "--input", str(molecules_csv), "--output", str(tmp_path / "o.csv")]
    # A probability averaged with a log-solubility would mean nothing.
    assert main(arguments) == 2
    assert "an ensemble's members must predict the same tasks" in capsys.readouterr().err
    (mixed / "ensemble.json").write_text("{")
    assert main(arguments) == 2
    assert "ensemble.json is not an ensemble file written by training" in capsys.readouterr().err


def test_single_model_commands_refuse_an_ensemble_folder(ensemble_dir, molecules_csv, capsys):
    assert main(["fingerprint", "--model", str(ensemble_dir), "--input", str(molecules_csv), "--output", "x.npz"]) == 2
    assert "holds an ensemble: give one of its members" in capsys.readouterr().err


def test_ensemble_api_needs_members(classifier_dir, tokenizer):
    with pytest.raises(ValueError, match="at least one model"):
        predict_smiles_ensemble([], ProtoMolProcessor(tokenizer), ["CCO"])


def test_explain_writes_json_and_png_per_molecule(classifier_dir, tmp_path, capsys):
    output_dir = tmp_path / "explained"
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "C1CC(C", "[Na+]"]
    arguments = ["explain", "--model", str(classifier_dir), "--smiles", *smiles, "--output_dir", str(output_dir)]
    assert main([*arguments, "--top_prototypes", "2"]) == 0
    assert "explained 2 of 3 rows; skipped 1" in capsys.readouterr().out
    index = json.loads((output_dir / "explanations.json").read_text())
    assert [entry["error"] is None for entry in index] == [True, False, True]
    assert "RDKit" in index[1]["error"] and not (output_dir / "molecule_1.json").exists()

    explanation = json.loads((output_dir / "molecule_0.json").read_text())
    assert [atom["element"] for atom in explanation["atoms"]] == list("CCOOCCCCCCCOO")
    importance = np.array([atom["importance"] for atom in explanation["atoms"]])
    assert (importance > 0).all() and importance.sum() == pytest.approx(1.0, abs=1e-5)
    expected = torch.sigmoid(direct_logits(classifier_dir, smiles[:1]).logits)[0].tolist()
    assert list(explanation["predictions"].values()) == pytest.approx(expected, abs=1e-6)
    assert set(explanation["nearest_prototypes"]) == {"a", "b"}
    for task in explanation["nearest_prototypes"].values():
        for nearest in task.values():
            similarities = [entry["similarity"] for entry in nearest]
            assert len(nearest) == 2 and similarities == sorted(similarities, reverse=True)
            assert all(entry["class"] in ("negative", "positive") for entry in nearest)
    assert 0 < len(explanation["tokens"]) <= 10 and explanation["text"].startswith("C9H8O4")

    # A single atom is explained too (all the attention is on it).
    assert json.loads((output_dir / "molecule_2.json").read_text())["atoms"][0]["importance"] == pytest.approx(1.0)
    for position in (0, 2):
        png = (output_dir / f"molecule_{position}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_explain_stops_at_an_invalid_smiles_on_request(classifier_dir, tmp_path, capsys):
    arguments = ["explain", "--model", str(classifier_dir), "--smiles", "CCO", "xyz", "--output_dir", str(tmp_path)]
    assert main([*arguments, "--invalid", "error"]) == 2
    assert "--smiles 1 ('xyz'): RDKit could not parse it" in capsys.readouterr().err
    assert main([*arguments, "--text", "only one"]) == 2
    assert "got 1 --text values for 2 --smiles" in capsys.readouterr().err


def test_explain_needs_cross_attention(tmp_path, tokenizer, capsys):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config(cross_attention="none"))
    save_model(tmp_path / "model", model, tokenizer)
    assert main(["explain", "--model", str(tmp_path / "model"), "--smiles", "CCO", "--output_dir", str(tmp_path)]) == 2
    assert "cross_attention='none'" in capsys.readouterr().err


def test_explain_asks_for_texts_when_the_model_was_trained_on_given_ones(classifier_dir, tmp_path, capsys):
    model_dir = tmp_path / "given_text_model"
    shutil.copytree(classifier_dir, model_dir)
    config = json.loads((model_dir / "processor_config.json").read_text())
    (model_dir / "processor_config.json").write_text(json.dumps({**config, "text_source": "given"}))
    assert main(["explain", "--model", str(model_dir), "--smiles", "CCO", "--output_dir", str(tmp_path / "out")]) == 2
    assert "give one --text per --smiles" in capsys.readouterr().err


def test_batches_group_similar_lengths_and_cover_every_valid_row(tokenizer):
    processor = ProtoMolProcessor(tokenizer, text_source="smiles")
    smiles = [row[0] for row in ROWS] * 3
    features, _ = featurize_rows(processor, smiles)
    batches = length_sorted_batches(features, batch_size=5)
    assert sorted(row for batch in batches for row in batch) == [i for i, item in enumerate(features) if item]
    assert all(len(batch) <= 5 for batch in batches)
    lengths = [len(features[row]["input_ids"]) for batch in batches for row in batch]
    assert lengths == sorted(lengths)


def test_featurization_in_worker_processes_matches_one_process(processor):
    # More rows than one worker chunk, invalid SMILES and an empty text among them.
    smiles = [row[0] for row in ROWS] * (PARALLEL_CHUNK_SIZE // len(ROWS) + 40)
    texts = ["a molecule"] * len(smiles)
    texts[-2] = " "
    serial = featurize_rows(processor, smiles, texts)
    parallel = featurize_rows(processor, smiles, texts, num_workers=2)
    assert parallel[1] == serial[1] and serial[1][-2] == "text is empty"
    assert all(
        (a is None and b is None) or all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
        for a, b in zip(parallel[0], serial[0], strict=True)
    )
    first_invalid = next(row for row, error in enumerate(serial[1]) if error)
    with pytest.raises(InvalidRowError) as raised:
        featurize_rows(processor, smiles, texts, invalid="error", num_workers=2)
    assert raised.value.row == first_invalid


def test_a_write_that_fails_leaves_the_previous_output_whole(
    classifier_dir, molecules_csv, tmp_path, monkeypatch, capsys
):
    output = tmp_path / "predictions.csv"
    arguments = ["predict", "--model", str(classifier_dir), "--input", str(molecules_csv), "--output", str(output)]
    assert main(arguments) == 0
    before = output.read_bytes()

    def full_disk(frame, path, **options):
        Path(path).write_text("smiles,a\nCCO,0.")  # what a full disk leaves: a CSV cut mid-row
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    assert main(arguments) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert (
        output.read_bytes() == before
        and sorted(path.name for path in tmp_path.iterdir() if "partial" in path.name) == []
    )
