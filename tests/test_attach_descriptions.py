"""scripts/attach_descriptions.py: descriptions joined onto a target CSV by molecule, rows kept in order."""

import pandas as pd
import pytest
from conftest import load_script

from protomol_hf import describe_molecule

attach_descriptions = load_script("attach_descriptions")


@pytest.fixture
def files(tmp_path):
    target = tmp_path / "target.csv"
    pd.DataFrame({"smiles": ["CCO", "OCC(=O)O", "c1ccccc1"], "y": [1, 0, 1]}).to_csv(target, index=False)
    texts = tmp_path / "texts.csv"
    # Ethanol written as in the target, glycolic acid in another but equivalent SMILES, a duplicate and an extra.
    pd.DataFrame(
        {"mol": ["CCO", "O=C(O)CO", "CCO", "CCN"], "text": ["an alcohol", "an acid", "second text", "an amine"]}
    ).to_csv(texts, index=False)
    return target, texts, tmp_path / "out.csv"


def run(target, texts, output, *extra):
    options = ["--descriptions_smiles_column", "mol", "--description_column", "text", *extra]
    return attach_descriptions.main(
        ["--input", str(target), "--descriptions", str(texts), "--output", str(output), *options]
    )


def test_missing_descriptions_are_an_error_naming_the_rows(files, capsys):
    target, texts, output = files
    assert run(target, texts, output) == 2
    error = capsys.readouterr().err
    assert "1 of 3 rows" in error and "(rows 2;" in error and "--missing template" in error
    assert not output.exists()


def test_rows_keep_their_order_matched_by_string_or_canonical_smiles(files, capsys):
    target, texts, output = files
    assert run(target, texts, output, "--missing", "template") == 0
    out = pd.read_csv(output)
    assert out["smiles"].tolist() == ["CCO", "OCC(=O)O", "c1ccccc1"] and out["y"].tolist() == [1, 0, 1]
    assert out["description"].tolist() == ["an alcohol", "an acid", describe_molecule("c1ccccc1")]
    assert "2 described (1 matched by canonical SMILES), 1 given the template description" in capsys.readouterr().out


def test_unparsable_rows_are_counted_apart_from_the_templated_ones(files, capsys):
    target, texts, output = files
    pd.DataFrame({"smiles": ["CCO", "not a smiles", "c1ccccc1"], "y": [1, 0, 1]}).to_csv(target, index=False)
    assert run(target, texts, output, "--missing", "template") == 0
    summary = capsys.readouterr().out
    assert "1 given the template description, 1 left empty: RDKit cannot parse their SMILES" in summary
