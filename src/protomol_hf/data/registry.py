"""The bundled MoleculeNet sets: one table of dataset facts (file, task type, label columns, display name)
and where their CSV files and benchmark split files are, inside the installed package."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

TaskType = Literal["classification", "regression"]
TASK_TYPES: tuple[str, ...] = ("classification", "regression")
# Package data (setup.cfg), so a bundled set and its splits work from an installed wheel as from a checkout.
BUNDLED_DATA_DIR = Path(str(resources.files("protomol_hf") / "datasets"))


@dataclass(frozen=True)
class DatasetSpec:
    """A bundled CSV file, how to read it and the name it goes by in papers and model cards.

    ``label_columns=None`` means every column except the SMILES column, resolved when loading
    (used for the wide multi-task sets).
    """

    name: str
    display_name: str
    filename: str
    task_type: TaskType
    label_columns: tuple[str, ...] | None
    smiles_column: str = "smiles"


MOLECULENET_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("bace", "BACE", "bace.csv", "classification", ("Class",)),
        DatasetSpec("bbbp", "BBBP", "bbbp.csv", "classification", ("p_np",)),
        DatasetSpec("clintox", "ClinTox", "clintox.csv", "classification", ("FDA_APPROVED", "CT_TOX")),
        DatasetSpec("tox21", "Tox21", "tox21.csv", "classification", None),
        DatasetSpec("toxcast", "ToxCast", "toxcast.csv.gz", "classification", None),
        DatasetSpec("sider", "SIDER", "sider.csv", "classification", None),
        DatasetSpec("hiv", "HIV", "hiv.csv.gz", "classification", ("HIV_active",)),
        DatasetSpec("muv", "MUV", "muv.csv.gz", "classification", None),
        DatasetSpec("esol", "ESOL", "esol.csv", "regression", ("logSolubility",)),
        DatasetSpec("freesolv", "FreeSolv", "freesolv.csv", "regression", ("freesolv",)),
        DatasetSpec("lipo", "Lipophilicity", "lipo.csv", "regression", ("lipo",)),
        DatasetSpec("qm7", "QM7", "qm7.csv", "regression", ("u0_atom",)),
    )
}


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of the bundled dataset `name` (case-insensitive); ValueError listing the known ones otherwise."""
    try:
        return MOLECULENET_DATASETS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(MOLECULENET_DATASETS))
        raise ValueError(f"unknown dataset {name!r}; known datasets: {known}") from None


def bundled_dataset_path(name: str) -> Path:
    """Path of the bundled CSV file of dataset `name`, inside the installed package."""
    spec = get_dataset_spec(name)
    return BUNDLED_DATA_DIR / spec.filename


def bundled_split_dir(name: str) -> Path:
    """Folder of the benchmark split files of dataset `name` (`random_0.json`, ..., `scaffold.json`), inside the
    installed package."""
    return BUNDLED_DATA_DIR / "splits" / get_dataset_spec(name).name
