"""Train/valid/test splits of a :class:`MolecularTable`: random, Bemis-Murcko scaffold, or read from a split
file of CSV row indices (the bundled benchmark splits are such files), and written back as one."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold
from sklearn.model_selection import train_test_split

from ..featurization_protomol import as_molecule
from .registry import bundled_split_dir, get_dataset_spec
from .tables import MolecularTable

SPLIT_PARTS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_CHOICES: tuple[str, ...] = ("random", "scaffold")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
Split = dict[str, np.ndarray]


def random_split(
    table: MolecularTable,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Split:
    """Random split, stratified on the label for single-task classification."""
    valid_size, test_size = _holdout_sizes(len(table), fractions)
    positions = np.arange(len(table))
    stratify_labels = table.labels[:, 0] if table.task_type == "classification" and table.num_tasks == 1 else None
    rest, test = _split_off(positions, test_size, stratify_labels, seed)
    rest_labels = stratify_labels[rest] if stratify_labels is not None else None
    train, valid = _split_off(rest, valid_size, rest_labels, seed)
    return {"train": np.sort(train), "valid": np.sort(valid), "test": np.sort(test)}


def _holdout_sizes(num_rows: int, fractions: Sequence[float]) -> tuple[int, int]:
    _check_fractions(fractions)
    return round(fractions[1] * num_rows), round(fractions[2] * num_rows)


def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, valid, test) summing to 1, got {tuple(fractions)}"
        )


def _split_off(
    positions: np.ndarray,
    holdout_size: int,
    stratify_labels: np.ndarray | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    if holdout_size == 0:
        return positions, positions[:0]
    if holdout_size >= len(positions):
        return positions[:0], positions
    if stratify_labels is not None and not _can_stratify(stratify_labels, holdout_size, len(positions) - holdout_size):
        stratify_labels = None
    rest, holdout = train_test_split(positions, test_size=holdout_size, random_state=seed, stratify=stratify_labels)
    return rest, holdout


def _can_stratify(labels: np.ndarray, holdout_size: int, rest_size: int) -> bool:
    """sklearn needs two members per class and room for every class on both sides."""
    _, counts = np.unique(labels, return_counts=True)
    return counts.min() >= 2 and min(holdout_size, rest_size) >= len(counts)


def scaffold_split(table: MolecularTable, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> Split:
    """Deterministic Bemis-Murcko scaffold split, so no scaffold is shared between parts.

    Scaffold sets go largest first into train while they fit its share, else into valid while
    they fit its share, else into test. Equal-sized sets are ordered as DeepChem's
    ScaffoldSplitter orders them (the one first seen later goes first); together this
    reproduces the bundled ``scaffold`` split files.
    """
    _check_fractions(fractions)
    train_size = round(fractions[0] * len(table))
    valid_size = round(fractions[1] * len(table))
    scaffold_sets = sorted(
        _scaffold_sets(table.molecules), key=lambda members: (len(members), members[0]), reverse=True
    )
    parts: dict[str, list[int]] = {part: [] for part in SPLIT_PARTS}
    for scaffold_set in scaffold_sets:
        if len(parts["train"]) + len(scaffold_set) <= train_size:
            parts["train"].extend(scaffold_set)
        elif len(parts["valid"]) + len(scaffold_set) <= valid_size:
            parts["valid"].extend(scaffold_set)
        else:
            parts["test"].extend(scaffold_set)
    return {part: np.sort(np.array(members, dtype=np.int64)) for part, members in parts.items()}


def _scaffold_sets(molecules: list[Chem.Mol]) -> list[list[int]]:
    """Positions grouped by scaffold, groups in order of first occurrence."""
    groups: dict[str, list[int]] = {}
    for position, molecule in enumerate(molecules):
        groups.setdefault(murcko_scaffold(molecule), []).append(position)
    return list(groups.values())


def murcko_scaffold(molecule: str | Chem.Mol) -> str:
    """Bemis-Murcko scaffold SMILES without stereochemistry ('' for acyclic molecules) of a SMILES or a parsed
    molecule."""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=as_molecule(molecule), includeChirality=False)


def bundled_split_path(dataset_name: str, split_name: str) -> Path:
    """The benchmark split file `<split>.json[.gz]` of a bundled dataset (package data)."""
    dataset_name = get_dataset_spec(dataset_name).name
    split_dir = bundled_split_dir(dataset_name)
    for suffix in (".json", ".json.gz"):
        candidate = split_dir / f"{split_name}{suffix}"
        if candidate.is_file():
            return candidate
    available = sorted(p.name for p in split_dir.glob("*.json*")) if split_dir.is_dir() else []
    raise FileNotFoundError(
        f"no split file {split_name!r} for dataset {dataset_name!r} in {split_dir} "
        f"(found: {', '.join(available) or 'nothing'}); pass split_file=<path> for a split of your own"
    )


def resolve_split_file(split_file: str | None, dataset_name: str | None) -> str | None:
    """A path as given, or the bundled split of that name (e.g. 'random_0') for a bundled dataset."""
    if split_file is None or Path(split_file).exists():
        return split_file
    names_a_bundled_split = "/" not in split_file and not split_file.endswith((".json", ".gz"))
    if dataset_name is not None and names_a_bundled_split:
        return str(bundled_split_path(dataset_name, split_file))
    hint = " (bundled split names such as random_0 need --dataset_name)" if names_a_bundled_split else ""
    raise FileNotFoundError(f"split file not found: {split_file}{hint}")


def load_split_file(path: str | Path, table: MolecularTable) -> Split:
    """Read a split file of CSV row indices and map them to positions in ``table``."""
    path = Path(path)
    content = read_split_json(path)
    missing_parts = [part for part in SPLIT_PARTS if part not in content]
    if missing_parts:
        raise ValueError(f"{path}: split file lacks part(s) {missing_parts}")
    file_dataset = content.get("dataset")
    if file_dataset and table.dataset_name and file_dataset != table.dataset_name:
        raise ValueError(f"{path}: split is for dataset {file_dataset!r}, but the table is {table.dataset_name!r}")

    position_of_row = np.full(table.num_source_rows, -1, dtype=np.int64)
    position_of_row[table.source_rows] = np.arange(len(table))
    exclusion_reason = {excluded.row: excluded.reason for excluded in table.invalid_rows}
    part_of_row: dict[int, str] = {}
    split: Split = {}
    for part in SPLIT_PARTS:
        rows = [int(row) for row in content[part]]
        for row in rows:
            if not 0 <= row < table.num_source_rows:
                raise ValueError(
                    f"{path}: row {row} in {part!r} is out of range; the data file "
                    f"has rows 0..{table.num_source_rows - 1}"
                )
            if row in part_of_row:
                where = (
                    f"twice in {part!r}" if part_of_row[row] == part else f"in both {part_of_row[row]!r} and {part!r}"
                )
                raise ValueError(f"{path}: row {row} appears {where}")
            if row in exclusion_reason:
                raise ValueError(f"{path}: row {row} in {part!r} was excluded from the table ({exclusion_reason[row]})")
            part_of_row[row] = part
        split[part] = position_of_row[np.array(rows, dtype=np.int64)]
    return split


def save_split(
    split: Split,
    table: MolecularTable,
    path: str | Path,
    split_name: str | None = None,
) -> Path:
    """Write ``split`` as CSV row indices, in the format of the benchmark split files."""
    path = Path(path)
    content: dict[str, object] = {}
    if table.dataset_name is not None:
        content["dataset"] = table.dataset_name
    content["file"] = Path(table.data_file).name
    if split_name is not None:
        content["split"] = split_name
    for part in SPLIT_PARTS:
        content[part] = table.source_rows[np.asarray(split[part], dtype=np.int64)].tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(content)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_split_json(path: Path) -> dict:
    """The content of a split file (JSON, or gzipped JSON for a `.gz` path), as written by `save_split`."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return json.load(handle)
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a JSON split file ({error})") from None


def make_split(
    table: MolecularTable,
    split: str = "random",
    split_file: str | Path | None = None,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> Split:
    """The split named by ``split``, or the one stored in ``split_file`` when given."""
    if split not in SPLIT_CHOICES:
        raise ValueError(f"split must be one of {SPLIT_CHOICES}, got {split!r}")
    if split_file is not None:
        return load_split_file(split_file, table)
    if split == "scaffold":
        return scaffold_split(table, fractions)
    return random_split(table, fractions, seed)
