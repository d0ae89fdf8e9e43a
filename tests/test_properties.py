"""Property-based tests (hypothesis): whatever a user feeds in gives a result or an error naming the row, never
a crash and never a lost row. Example counts are small so the file runs in seconds."""

import csv
import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_config
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rdkit import Chem, rdBase

from protomol_hf import ProtoMolFeaturizationError, ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.cli import main
from protomol_hf.data import bundled_dataset_path, load_table
from protomol_hf.description_protomol import describe_molecule
from protomol_hf.featurization_protomol import smiles_to_graph
from protomol_hf.prediction import featurize_rows

VALID_SMILES = pd.read_csv(bundled_dataset_path("bace"), usecols=["smiles"])["smiles"].head(300).tolist()
INVALID_SMILES = ["", "   ", "C1CC(C", "not_a_smiles", "c1ccccc", "[Xx]", "C(C)(C)(C)(C)C", "\U0001f48a", "\x00"]
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
WITH_MODEL = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

any_smiles = st.one_of(st.sampled_from(VALID_SMILES), st.sampled_from(INVALID_SMILES), st.text(max_size=30))


def featurizes(smiles) -> bool:
    try:
        smiles_to_graph(smiles)
    except ProtoMolFeaturizationError:
        return False
    return True


def check_graph(graph, smiles):
    num_atoms = len(graph["atom_features"])
    with rdBase.BlockLogs():
        assert num_atoms == Chem.MolFromSmiles(smiles.strip()).GetNumAtoms()
    assert graph["atom_features"].shape == (num_atoms, 9) and graph["atom_features"].dtype == np.int64
    num_edges = graph["edge_index"].shape[1]
    assert graph["edge_index"].shape == (2, num_edges) and num_edges % 2 == 0
    assert graph["bond_features"].shape == (num_edges, 3)
    assert num_edges == 0 or 0 <= graph["edge_index"].min() <= graph["edge_index"].max() < num_atoms


@FAST
@given(st.text(max_size=60))
@example("C" * 501)
@example("[Na+].[Cl-]")
def test_any_string_featurizes_or_raises_with_a_reason(text):
    try:
        graph = smiles_to_graph(text)
    except ProtoMolFeaturizationError as error:
        assert error.reason and error.reason in str(error)  # noqa: PT017 (either outcome is valid here)
        return
    check_graph(graph, text)


@FAST
@given(st.one_of(st.none(), st.floats(), st.integers(), st.binary(max_size=10), st.lists(st.text(), max_size=2)))
def test_non_strings_raise_featurization_errors(value):
    with pytest.raises(ProtoMolFeaturizationError):
        smiles_to_graph(value)


@FAST
@given(st.sampled_from(VALID_SMILES))
def test_bundled_molecules_give_consistent_graphs_and_descriptions(smiles):
    check_graph(smiles_to_graph(smiles), smiles)
    assert describe_molecule(smiles).strip()


@FAST
@given(st.lists(any_smiles, max_size=12))
def test_rows_stay_aligned_and_only_invalid_rows_fail(processor, smiles):
    features, errors = featurize_rows(processor, smiles)
    assert len(features) == len(errors) == len(smiles)
    for item, error, molecule in zip(features, errors, smiles, strict=True):
        assert (item is None) == (error is not None) == (not featurizes(molecule))
        assert error is None or error.startswith("invalid SMILES: ")


@FAST
@given(st.text(max_size=300))
@example("x" * 100_000)
@example("")
@example(" \n\t")
@example("Ein Molekül mit Ωmega-Bindungen, 溶解度 und 💊")
def test_any_text_is_tokenized_within_the_limit_or_rejected_when_empty(processor, text):
    if not text.strip():
        with pytest.raises(ValueError, match=r"^text is empty"):
            processor(smiles="CCO", text=text)
        _, errors = featurize_rows(processor, ["CCO"], [text])
        assert errors == ["text is empty"]
        return
    features = processor(smiles="CCO", text=text)
    assert 2 <= len(features["input_ids"]) <= processor.max_text_length


@FAST
@given(
    st.lists(
        st.tuples(st.sampled_from(VALID_SMILES), st.sampled_from([0.0, 1.0, math.nan]), st.sampled_from([0.0, 1.0])),
        min_size=1,
        max_size=8,
    )
)
def test_collated_batches_keep_molecules_apart_and_labels_in_place(processor, rows):
    smiles = [row[0] for row in rows]
    labels = np.array([row[1:] for row in rows])
    batch = processor(smiles=smiles, labels=labels, return_tensors="pt")
    atom_counts = [len(smiles_to_graph(s)["atom_features"]) for s in smiles]
    assert batch["atom_features"].shape == (sum(atom_counts), 9)
    assert batch["molecule_index"].tolist() == [i for i, count in enumerate(atom_counts) for _ in range(count)]
    source, target = batch["edge_index"]
    assert torch.equal(batch["molecule_index"][source], batch["molecule_index"][target])
    assert batch["input_ids"].shape[0] == batch["attention_mask"].shape[0] == len(rows)
    np.testing.assert_array_equal(batch["labels"].numpy(), labels.astype(np.float32))


@FAST
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)), min_size=1, max_size=6))
def test_training_labels_load_or_raise_naming_the_row(tmp_path_factory, labels):
    path = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())) / "labels.csv"
    pd.DataFrame({"smiles": ["CCO"] * len(labels), "y": labels}).to_csv(path, index=False)
    try:
        table = load_table(path)
    except ValueError as error:
        assert f"{path}: " in str(error) and "row" in str(error)  # noqa: PT017 (either outcome is valid here)
        return
    assert len(table) + len(table.invalid_rows) == len(labels)
    assert all(reason.reason == "all labels missing" for reason in table.invalid_rows)
    assert np.isfinite(table.labels).all()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("property_model")
    ProtoMolForMolecularPropertyPrediction(tiny_config()).save_pretrained(directory)
    ProtoMolProcessor(tokenizer, max_text_length=32).save_pretrained(directory)
    return directory


@WITH_MODEL
@given(st.lists(st.tuples(any_smiles, st.one_of(st.none(), st.text(max_size=40))), max_size=10))
@example([("\r", None), ("CCO", None), ("x\ny", None), ("CCO", None)])
@example([("CCO", ""), ("CCO", "ethanol, ünïcode 💧"), ("c1ccccc1", " "), ("C", "x" * 100_000)])
def test_cli_predict_keeps_every_row_in_order(model_dir, tmp_path_factory, rows):
    """Rows of (SMILES, text); with any text given, every row's text is used (None -> an empty cell)."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    with_text = any(text is not None for _, text in rows)
    table = pd.DataFrame({"smiles": [s for s, _ in rows], "row_id": range(len(rows))})
    if with_text:
        table["text"] = [text or "" for _, text in rows]
    # Quoted, so that cells holding line breaks stay one field (pandas leaves a lone "\r" unquoted).
    table.to_csv(folder / "in.csv", index=False, quoting=csv.QUOTE_ALL)
    arguments = ["predict", "--model", str(model_dir), "--input", str(folder / "in.csv"), "--batch_size", "3"]
    arguments += ["--output", str(folder / "out.csv")] + (["--text_column", "text"] if with_text else [])
    assert main(arguments) == 0
    written = pd.read_csv(folder / "in.csv", dtype=str, keep_default_na=False)
    output = pd.read_csv(folder / "out.csv", dtype=str, keep_default_na=False)
    assert output["row_id"].tolist() == [str(row) for row in range(len(rows))]
    assert output["smiles"].tolist() == written["smiles"].tolist()
    texts = written["text"] if with_text else [None] * len(rows)
    for value, error, molecule, text in zip(output["task_0"], output["error"], output["smiles"], texts, strict=True):
        if text is not None and not text.strip():
            assert error == "text is empty" and value == ""
        elif featurizes(molecule):
            assert error == "" and 0.0 <= float(value) <= 1.0
        else:
            assert error.startswith("invalid SMILES: ") and value == ""


def test_cli_predict_on_empty_header_only_and_misspelt_inputs(model_dir, tmp_path, capsys):
    def predict(csv_text, *options):
        (tmp_path / "in.csv").write_text(csv_text)
        arguments = ["predict", "--model", str(model_dir), "--input", str(tmp_path / "in.csv")]
        return main([*arguments, "--output", str(tmp_path / "out.csv"), *options])

    assert predict("") == 2
    assert "cannot read" in capsys.readouterr().err
    assert predict("smiles\n") == 0
    assert "predicted 0 of 0 rows" in capsys.readouterr().out
    assert predict("SMILES\nCCO\n") == 2
    assert "has no SMILES column 'smiles'; available columns: 'SMILES'" in capsys.readouterr().err
    assert predict("smiles\nCCO\nCCO\nCCO\n") == 0
    assert pd.read_csv(tmp_path / "out.csv")["task_0"].nunique() == 1 and "predicted 3 of 3" in capsys.readouterr().out
