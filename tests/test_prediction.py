"""protomol_hf.prediction: a bad value is its own row's error, never the batch's; non-finite outputs are errors."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config

from protomol_hf import ProtoMolForMolecularPropertyPrediction
from protomol_hf.cli import main
from protomol_hf.prediction import InvalidRowError, embed_smiles, mark_non_finite_rows, predict_smiles


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ProtoMolForMolecularPropertyPrediction(tiny_config()).eval()


def test_missing_values_and_numbers_among_the_smiles_fail_their_own_rows(model, processor):
    smiles = ["CCO", np.nan, None, pd.NA, 3, True, "c1ccccc1O"]
    predictions, errors = predict_smiles(model, processor, smiles)
    assert [error is None for error in errors] == [True, False, False, False, False, False, True]
    assert "NaN (missing value)" in errors[1] and "None" in errors[2] and "got int" in errors[4]
    assert np.isfinite(predictions[[0, 6]]).all() and np.isnan(predictions[1:6]).all()


def test_a_text_the_tokenizer_cannot_take_fails_its_own_row(model, processor):
    _, errors = predict_smiles(model, processor, ["CCO", "CCN"], texts=["ethanol", "broken \ud800 text"])
    assert errors[0] is None and errors[1].startswith("text is not valid Unicode")


def test_non_finite_rows_become_errors_and_a_model_with_no_finite_output_is_refused():
    values = np.array([[0.5], [np.nan], [np.inf], [np.nan]])
    errors = [None, None, None, "invalid SMILES: empty SMILES string"]
    mark_non_finite_rows([values], errors, "skip")
    reason = "the model's output is not finite (NaN or inf)"
    assert errors == [None, reason, reason, "invalid SMILES: empty SMILES string"]
    assert values[0, 0] == 0.5 and np.isnan(values[1:]).all()
    mark_non_finite_rows([np.empty((0, 1)), np.empty((0, 2, 3))], [], "skip")  # no rows: nothing to mark
    with pytest.raises(InvalidRowError, match="row 1: the model's output is not finite"):
        mark_non_finite_rows([np.array([[0.5], [np.nan]])], [None, None], "error")
    with pytest.raises(ValueError, match=r"not finite .* for any of the 2 molecules"):
        mark_non_finite_rows([np.array([[np.nan], [np.nan]])], [None, None], "skip")


def test_a_model_with_nan_weights_fails_prediction_and_embedding(model, processor, tmp_path, capsys):
    with torch.no_grad():
        model.predictor.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="weights or config are broken"):
        predict_smiles(model, processor, ["CCO", "CCN"])
    with torch.no_grad():
        next(model.protomol.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match="weights or config are broken"):
        embed_smiles(model, processor, ["CCO", "CCN"])
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    (tmp_path / "in.csv").write_text("smiles\nCCO\nCCN\n")
    arguments = ["--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.csv")]
    assert main(["predict", *arguments, "--output", str(tmp_path / "out.csv")]) == 2
    assert "weights or config are broken" in capsys.readouterr().err
