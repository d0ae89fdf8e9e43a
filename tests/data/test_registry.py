"""protomol_hf.data.registry: the bundled sets and their files."""

import pytest

from protomol_hf.data import (
    MOLECULENET_DATASETS,
    bundled_dataset_path,
    load_table,
)

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


def test_registry_covers_moleculenet_and_files_exist():
    assert set(MOLECULENET_DATASETS) == MOLECULENET_NAMES
    for name, spec in MOLECULENET_DATASETS.items():
        assert bundled_dataset_path(name).is_file(), name
        assert spec.task_type in ("classification", "regression")


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="known datasets: bace, bbbp"):
        load_table(dataset_name="not_a_dataset")
