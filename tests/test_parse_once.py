"""Each SMILES is parsed once per row on the training, prediction and explain paths: the graph, the description
and the scaffold are all built from the one RDKit molecule."""

import pandas as pd
import pytest
from conftest import FIXTURES, TINY_MODEL_ARGS
from rdkit import Chem

from protomol_hf.cli import main

CSV = FIXTURES / "tiny_classification.csv"


@pytest.fixture
def parse_count(monkeypatch):
    """Counts the calls of `Chem.MolFromSmiles` (every module of the package parses through it)."""
    calls = []
    parse = Chem.MolFromSmiles

    def counting_parse(*args, **kwargs):
        calls.append(args[0])
        return parse(*args, **kwargs)

    monkeypatch.setattr(Chem, "MolFromSmiles", counting_parse)
    return calls


def test_training_prediction_and_explain_parse_each_smiles_once(tmp_path, tiny_text_model, parse_count):
    num_rows = len(pd.read_csv(CSV))
    output_dir = tmp_path / "model"
    # The scaffold split builds scaffolds too; a fresh cache folder makes the featurization run rather than load.
    arguments = ["--data_file", str(CSV), "--split", "scaffold", "--output_dir", str(output_dir)]
    options = ["--text_model", str(tiny_text_model), "--cache_dir", str(tmp_path / "cache"), *TINY_MODEL_ARGS]
    assert main(["train", *arguments, *options, "--num_train_epochs", "1", "--use_cpu"]) == 0
    assert len(parse_count) == num_rows

    parse_count.clear()
    predictions = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(output_dir), "--input", str(CSV), "--output", str(predictions)]) == 0
    assert len(parse_count) == num_rows and len(pd.read_csv(predictions)) == num_rows

    parse_count.clear()
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O"]
    assert main(["explain", "--model", str(output_dir), "--smiles", *smiles, "--output_dir", str(tmp_path / "x")]) == 0
    assert sorted(parse_count) == sorted(smiles)
