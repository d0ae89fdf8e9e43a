import gzip
import io
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from protomol_hf.data import (
    MOLECULENET_DATASETS,
    bundled_dataset_path,
    bundled_split_path,
    load_split_file,
    load_table,
    make_split,
    murcko_scaffold,
    random_split,
    save_split,
    scaffold_split,
)

FIXTURES = Path(__file__).parent / "fixtures"
CLASSIFICATION_CSV = FIXTURES / "tiny_classification.csv"
REGRESSION_CSV = FIXTURES / "tiny_regression.csv"
INVALID_CSV = FIXTURES / "tiny_invalid.csv"
MOLECULENET_NAMES = {
    "bace",
    "bbbp",
    "clintox",
    "tox21",
    "toxcast",
    "sider",
    "hiv",
    "muv",
    "esol",
    "freesolv",
    "lipo",
    "qm7",
}


@pytest.fixture(scope="module")
def bace():
    return load_table(dataset_name="bace")


@pytest.fixture(scope="module")
def tox21():
    return load_table(dataset_name="tox21")


def _csv_row_count(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return sum(1 for line in handle if line.strip()) - 1


def _write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_registry_covers_moleculenet_and_files_exist():
    assert set(MOLECULENET_DATASETS) == MOLECULENET_NAMES
    for name, spec in MOLECULENET_DATASETS.items():
        assert bundled_dataset_path(name).is_file(), name
        assert spec.task_type in ("classification", "regression")


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="known datasets: bace, bbbp"):
        load_table(dataset_name="not_a_dataset")


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


def test_bundled_split_file_maps_to_kept_rows(bace):
    path = bundled_split_path("bace", "random_0")
    stored = json.loads(path.read_text())
    split = load_split_file(path, bace)
    for part in ("train", "valid", "test"):
        assert len(split[part]) == len(stored[part])
        assert bace.source_rows[split[part]].tolist() == stored[part]
    all_positions = np.concatenate(list(split.values()))
    assert len(np.unique(all_positions)) == len(all_positions) == len(bace)


def test_benchmark_split_covers_exactly_the_kept_rows(tox21):
    split = load_split_file(bundled_split_path("tox21", "scaffold"), tox21)
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(tox21)))


def test_missing_bundled_split_raises_file_not_found():
    with pytest.raises(FileNotFoundError, match=r"random_9.*pass split_file"):
        bundled_split_path("bace", "random_9")


def _write_split(tmp_path, train, valid, test):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": train, "valid": valid, "test": test}))
    return path


def test_split_file_problems_raise(tmp_path):
    table = load_table(INVALID_CSV)
    with pytest.raises(ValueError, match=r"row 7 in 'test' is out of range.*rows 0\.\.6"):
        load_split_file(_write_split(tmp_path, [0, 1], [5], [7]), table)
    with pytest.raises(ValueError, match="row 1 appears in both 'train' and 'valid'"):
        load_split_file(_write_split(tmp_path, [0, 1], [1], [6]), table)
    with pytest.raises(ValueError, match=r"row 4 in 'valid' was excluded.*all labels missing"):
        load_split_file(_write_split(tmp_path, [0, 1], [4], [6]), table)
    broken = tmp_path / "broken.json"
    broken.write_text('{"train": [0, 1')
    with pytest.raises(ValueError, match=rf"{re.escape(str(broken))}: not a JSON split file"):
        load_split_file(broken, table)


def test_split_file_for_another_dataset_is_rejected(bace):
    with pytest.raises(ValueError, match="split is for dataset 'esol'"):
        load_split_file(bundled_split_path("esol", "random_0"), bace)


def _class_ratio(table, positions):
    return table.labels[positions, 0].mean()


@pytest.mark.parametrize("table_fixture", ["tiny_classification", "bace"])
def test_random_split_is_stratified_and_deterministic(request, table_fixture):
    table = request.getfixturevalue(table_fixture)
    split = random_split(table, seed=3)
    overall = table.labels[:, 0].mean()
    tolerance = 0.06 if len(table) < 100 else 0.02
    for part, positions in split.items():
        assert abs(_class_ratio(table, positions) - overall) <= tolerance, part
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(len(table)))
    again = random_split(table, seed=3)
    assert all(np.array_equal(split[part], again[part]) for part in split)
    other_seed = random_split(table, seed=4)
    assert not np.array_equal(split["test"], other_seed["test"])


def test_random_split_sizes_match_fractions(bace):
    split = random_split(bace)
    assert {part: len(positions) for part, positions in split.items()} == {
        "train": 1211,
        "valid": 151,
        "test": 151,
    }


def test_random_split_works_for_regression():
    table = load_table(REGRESSION_CSV)
    split = random_split(table, fractions=(0.5, 0.25, 0.25), seed=1)
    assert [len(split[part]) for part in ("train", "valid", "test")] == [20, 10, 10]


def test_scaffold_split_keeps_scaffolds_apart(tiny_classification):
    split = scaffold_split(tiny_classification)
    scaffolds = {
        part: {murcko_scaffold(tiny_classification.smiles[p]) for p in positions} for part, positions in split.items()
    }
    assert not scaffolds["train"] & scaffolds["valid"]
    assert not scaffolds["train"] & scaffolds["test"]
    assert not scaffolds["valid"] & scaffolds["test"]
    assert sum(len(positions) for positions in split.values()) == len(tiny_classification)
    again = scaffold_split(tiny_classification)
    assert all(np.array_equal(split[part], again[part]) for part in split)


@pytest.mark.parametrize("dataset_name", ["bace", "tox21"])
def test_scaffold_split_reproduces_bundled_benchmark_split(request, dataset_name):
    table = request.getfixturevalue(dataset_name)
    split = scaffold_split(table)
    stored = json.loads(bundled_split_path(dataset_name, "scaffold").read_text())
    for part in ("train", "valid", "test"):
        assert table.source_rows[split[part]].tolist() == sorted(stored[part])


@pytest.mark.parametrize("filename", ["split.json", "split.json.gz"])
def test_save_split_round_trips(tmp_path, filename):
    table = load_table(INVALID_CSV)
    split = {"train": np.array([0, 1]), "valid": np.array([2]), "test": np.array([3])}
    path = save_split(split, table, tmp_path / "nested" / filename, split_name="custom")
    opener = gzip.open if filename.endswith(".gz") else open
    with opener(path, "rt") as handle:
        stored = json.load(handle)
    assert stored["split"] == "custom" and stored["file"] == "tiny_invalid.csv"
    assert stored["test"] == [6]
    loaded = load_split_file(path, table)
    assert all(np.array_equal(loaded[part], split[part]) for part in split)


def test_make_split_dispatches_and_rejects_unknown_choice(tiny_classification, tmp_path):
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            make_split(tiny_classification, "scaffold").values(),
            scaffold_split(tiny_classification).values(),
            strict=True,
        )
    )
    saved = save_split(random_split(tiny_classification, seed=5), tiny_classification, tmp_path / "split.json")
    from_file = make_split(tiny_classification, split_file=saved)
    expected = random_split(tiny_classification, seed=5)
    assert all(np.array_equal(from_file[part], expected[part]) for part in expected)
    with pytest.raises(ValueError, match=r"split must be one of \('random', 'scaffold'\)"):
        make_split(tiny_classification, "temporal")
