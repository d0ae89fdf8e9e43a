"""protomol_hf.data.tables: reading, checking and parsing CSV files into tables."""

import gzip
import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES

from protomol_hf.data import (
    bundled_dataset_path,
    load_table,
)

CLASSIFICATION_CSV = FIXTURES / "tiny_classification.csv"
REGRESSION_CSV = FIXTURES / "tiny_regression.csv"
INVALID_CSV = FIXTURES / "tiny_invalid.csv"


def _csv_row_count(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return sum(1 for line in handle if line.strip()) - 1


def _write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_bace_loads_every_row_as_one_task(bace):
    assert len(bace) == 1513
    assert bace.task_names == ["Class"]
    assert bace.task_type == "classification"
    assert bace.labels.shape == (1513, 1) and bace.labels.dtype == np.float32
    assert bace.invalid_rows == []
    assert bace.report() == "kept 1513 of 1513 rows; none excluded"


def test_tox21_has_twelve_tasks_with_missing_labels_and_reports_invalid_smiles(tox21):
    assert tox21.num_tasks == 12
    assert np.isnan(tox21.labels).any()
    assert len(tox21) + len(tox21.invalid_rows) == _csv_row_count(bundled_dataset_path("tox21"))
    assert len(tox21.invalid_rows) == 8
    report = tox21.report(max_listed=3)
    assert report.startswith("kept 7823 of 7831 rows; excluded 8: row ")
    assert report.endswith("and 5 more")


def test_invalid_rows_are_reported_with_row_and_reason():
    table = load_table(INVALID_CSV)
    assert len(table) + len(table.invalid_rows) == _csv_row_count(INVALID_CSV)
    assert table.source_rows.tolist() == [0, 1, 5, 6]
    excluded = {record.row: record for record in table.invalid_rows}
    assert sorted(excluded) == [2, 3, 4]
    assert excluded[2].smiles == "C1CC(C" and "parse" in excluded[2].reason
    assert excluded[3].smiles == "" and "empty" in excluded[3].reason
    assert excluded[4].reason == "all labels missing"
    report = table.report()
    assert report.startswith("kept 4 of 7 rows; excluded 3: row 2 (SMILES 'C1CC(C'): ")
    assert "row 4 (SMILES 'CC(=O)Oc1ccccc1C(=O)O'): all labels missing" in report


def test_rows_with_empty_text_are_excluded(tmp_path):
    path = _write_csv(tmp_path, "smiles,label,description\nCCO,0,an alcohol\nCCN,1,\nCCC,1, \nCCCl,1,a chloride\n")
    table = load_table(path, text_column="description")
    assert table.texts == ["an alcohol", "a chloride"]
    assert table.task_names == ["label"]
    assert [(record.row, record.reason) for record in table.invalid_rows] == [
        (1, "text is empty"),
        (2, "text is empty"),
    ]


def test_task_type_is_inferred_from_labels(tiny_classification):
    assert tiny_classification.task_type == "classification"
    assert set(np.unique(tiny_classification.labels)) == {0.0, 1.0}
    regression = load_table(REGRESSION_CSV)
    assert regression.task_type == "regression"
    assert regression.task_names == ["target"] and len(regression) == 40


@pytest.mark.parametrize(
    ("csv_text", "options", "message"),
    [
        ("mol,label\nCCO,1\n", {}, r"no SMILES column 'smiles'; columns are: 'mol', 'label'"),
        ("smiles,label\nCCO,1\n", {"label_columns": ["y"]}, r"label column\(s\) \['y'\] not found"),
        ("smiles,label\nCCO,1\nCCN,high\n", {}, r"non-numeric value 'high' in row 1"),
        (
            "smiles,label\nCCO,1\nCCN,2\n",
            {"task_type": "classification"},
            r"must be 0 or 1, but column 'label' has 2 in row 1",
        ),
        ("smiles,label\nCCO,1\n", {"text_column": "caption"}, r"no text column 'caption'"),
        ("smiles,label\nCCO,1.5\nCCN,inf\n", {}, r"label column 'label' has a value out of range, 'inf', in row 1"),
        ("smiles,label\nCCO,-Infinity\n", {}, r"out of range, '-inf', in row 0"),
        ("", {}, r"the file is empty"),
        ("smiles,label\n", {}, r"has a header but no data rows"),
        ("smiles,label\nCCO,1e39\n", {}, r"out of range, '1e\+39', in row 0"),
        # What pandas would silently rename, drop or shift:
        ("smiles,y,y\nCCO,1,0\n", {}, r"the header names column\(s\) \['y'\] more than once"),
        (
            "smiles,label,text\nCCO,1,polar, small\n",
            {"text_column": "text"},
            r"row 0 has 4 fields but the header has 3 columns; quote cells that contain a comma",
        ),
        ("smiles,label\nCCO,1\n\nCCN,0,x\n", {}, r"row 1 has 3 fields"),  # blank lines are not rows
        ("smiles;label\nCCO;1\n", {}, r"columns are: 'smiles;label' \(the header looks ';'-separated"),
        ("smiles, y\nCCO,1\n", {"label_columns": ["y"]}, r"columns are: 'smiles', ' y'"),
        ("smiles,y\nCCO,\nCCN,\n", {}, r"no usable rows: kept 0 of 2 rows; excluded 2: row 0"),
        (
            "smiles,y\nCCO,1\nCCN,1\n",
            {},
            r"no label column holds both classes in the 2 usable rows \('y' only \[1.0\]\)",
        ),
    ],
)
def test_column_problems_raise_errors_naming_the_file(tmp_path, csv_text, options, message):
    path = _write_csv(tmp_path, csv_text)
    with pytest.raises(ValueError, match=message) as error:
        load_table(path, **options)
    assert str(error.value).startswith(f"{path}: ")


def test_a_single_class_task_beside_others_is_named_in_a_warning(tmp_path, caplog):
    path = _write_csv(tmp_path, "smiles,y,const\nCCO,1,1\nCCN,0,1\n")
    with caplog.at_level(logging.WARNING, logger="protomol_hf.data"):
        table = load_table(path)
    assert table.num_tasks == 2
    assert "1 task(s) hold one class only in the usable rows" in caplog.text and "'const' only [1.0]" in caplog.text


@pytest.mark.parametrize(
    ("name", "csv_text"),
    [
        ("trailing_comma.csv", "smiles,y\nCCO,1,\nCCN,0,\n"),  # every row one empty field too many
        ("spreadsheet.csv", "smiles,y,,\nCCO,1,,\nCCN,0,,\n"),  # unnamed empty columns
        ("quoted.csv", 'smiles,y,text\nCCO,1,"polar, small"\nCCN,0,"two\nlines"\n'),
        ("long_text.csv", "smiles,y,text\nCCO,1," + "a" * 200_000 + "\nCCN,0,short\n"),
        ("compressed.csv.xz", "smiles,y\nCCO,1\nCCN,0\n"),
        ("compressed.csv.bz2", "smiles,y\nCCO,1\nCCN,0\n"),
    ],
)
def test_well_formed_csvs_pass_the_structure_check(tmp_path, name, csv_text):
    path = tmp_path / name
    if name.endswith((".xz", ".bz2")):
        pd.read_csv(io.StringIO(csv_text)).to_csv(path, index=False)
    else:
        path.write_text(csv_text)
    text_column = "text" if "text" in csv_text.splitlines()[0] else None
    table = load_table(path, label_columns=["y"], text_column=text_column)
    assert table.smiles == ["CCO", "CCN"] and table.labels[:, 0].tolist() == [1.0, 0.0]


def test_a_csv_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_text("smiles,y\nCCO,1\nCCN,0\n", encoding="utf-16")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not UTF-8 text .* save the CSV as UTF-8"):
        load_table(path)


def test_bad_arguments_raise_clear_errors(tmp_path):
    path = _write_csv(tmp_path, "smiles,label\nCCO,1\n")
    with pytest.raises(ValueError, match="task_type must be one of"):
        load_table(path, task_type="ranking")
    with pytest.raises(ValueError, match="give a data_file"):
        load_table()
    with pytest.raises(FileNotFoundError, match="data file not found"):
        load_table(tmp_path / "absent.csv")


def test_a_smiles_rdkit_would_read_as_another_molecule_is_excluded_by_row(tmp_path):
    path = _write_csv(tmp_path, 'smiles,label\nCCO,1\nCC O,0\n"C\nC",1\nCCN,0\n')
    table = load_table(path)
    assert table.smiles == ["CCO", "CCN"]
    assert [(row.row, row.reason.split(":")[0]) for row in table.invalid_rows] == [
        (1, "contains whitespace"),
        (2, "character '\\n' at position 1 cannot be part of a SMILES"),
    ]
