"""protomol_hf.data.splits: random, scaffold and file splits."""

import gzip
import json
import re

import numpy as np
import pytest
from conftest import FIXTURES

from protomol_hf.data import (
    bundled_split_path,
    load_split_file,
    load_table,
    make_split,
    murcko_scaffold,
    random_split,
    save_split,
    scaffold_split,
)

REGRESSION_CSV = FIXTURES / "tiny_regression.csv"
INVALID_CSV = FIXTURES / "tiny_invalid.csv"


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
