"""Molecular property tables: loading CSV files and splitting them into train/valid/test.

Row numbers used throughout (reports, errors, split files) are 0-based indices of the data rows
in the CSV file as stored, header excluded: the indices the bundled benchmark split files use.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pandas.io.common import get_handle
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold
from sklearn.model_selection import train_test_split

from .featurization_protomol import featurize_many

logger = logging.getLogger(__name__)

TaskType = Literal["classification", "regression"]
TASK_TYPES: tuple[str, ...] = ("classification", "regression")
SPLIT_PARTS: tuple[str, ...] = ("train", "valid", "test")
SPLIT_CHOICES: tuple[str, ...] = ("random", "scaffold")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)


@dataclass(frozen=True)
class DatasetSpec:
    """A bundled CSV file and how to read it.

    ``label_columns=None`` means every column except the SMILES column, resolved when loading
    (used for the wide multi-task sets).
    """

    name: str
    filename: str
    task_type: TaskType
    label_columns: tuple[str, ...] | None
    smiles_column: str = "smiles"


MOLECULENET_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("bace", "bace.csv", "classification", ("Class",)),
        DatasetSpec("bbbp", "bbbp.csv", "classification", ("p_np",)),
        DatasetSpec("clintox", "clintox.csv", "classification", ("FDA_APPROVED", "CT_TOX")),
        DatasetSpec("tox21", "tox21.csv", "classification", None),
        DatasetSpec("toxcast", "toxcast.csv.gz", "classification", None),
        DatasetSpec("sider", "sider.csv", "classification", None),
        DatasetSpec("hiv", "hiv.csv.gz", "classification", ("HIV_active",)),
        DatasetSpec("muv", "muv.csv.gz", "classification", None),
        DatasetSpec("esol", "esol.csv", "regression", ("logSolubility",)),
        DatasetSpec("freesolv", "freesolv.csv", "regression", ("freesolv",)),
        DatasetSpec("lipo", "lipo.csv", "regression", ("lipo",)),
        DatasetSpec("qm7", "qm7.csv", "regression", ("u0_atom",)),
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
    return Path(str(resources.files("protomol_hf") / "datasets" / spec.filename))


@dataclass(frozen=True)
class ExcludedRow:
    """A CSV row left out of a table, and why."""

    row: int
    smiles: str
    reason: str


@dataclass
class MolecularTable:
    """The usable rows of a CSV file, plus a record of every row that was left out.

    ``labels`` is float32 [num_rows, num_tasks] with NaN for a missing label; ``source_rows[i]``
    is the CSV row that kept row ``i`` came from.
    """

    smiles: list[str]
    labels: np.ndarray
    task_names: list[str]
    task_type: TaskType
    source_rows: np.ndarray
    invalid_rows: list[ExcludedRow]
    data_file: str
    texts: list[str] | None = None
    dataset_name: str | None = None

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def num_tasks(self) -> int:
        """Number of label columns."""
        return len(self.task_names)

    @property
    def num_source_rows(self) -> int:
        """Number of data rows in the CSV file: the kept ones plus the excluded ones."""
        return len(self) + len(self.invalid_rows)

    def report(self, max_listed: int = 10) -> str:
        """One line saying how many rows were kept, listing (at most `max_listed` of) the excluded ones."""
        summary = f"kept {len(self)} of {self.num_source_rows} rows"
        if not self.invalid_rows:
            return f"{summary}; none excluded"
        listed = [
            f"row {excluded.row} (SMILES {excluded.smiles!r}): {excluded.reason}"
            for excluded in self.invalid_rows[:max_listed]
        ]
        remaining = len(self.invalid_rows) - max_listed
        if remaining > 0:
            listed.append(f"and {remaining} more")
        return f"{summary}; excluded {len(self.invalid_rows)}: " + "; ".join(listed)


def load_table(
    data_file: str | Path | None = None,
    dataset_name: str | None = None,
    smiles_column: str = "smiles",
    label_columns: Sequence[str] | None = None,
    task_type: TaskType | None = None,
    text_column: str | None = None,
    num_workers: int = 1,
) -> MolecularTable:
    """Read a CSV file into a :class:`MolecularTable`.

    With ``dataset_name`` the bundled file and its spec are used; ``data_file`` may still point
    at a copy of it, and ``label_columns``/``task_type`` may narrow or override the spec. Without
    it, ``label_columns=None`` means every column except the SMILES (and text) column, and the
    task type is inferred: classification when every label is 0 or 1, regression otherwise.

    Rows are excluded (and listed in ``invalid_rows``) when the SMILES cannot be featurized,
    when all their labels are missing, or when their text is empty. No row is dropped silently.
    """
    if dataset_name is not None:
        spec = get_dataset_spec(dataset_name)
        dataset_name = spec.name
        data_file = data_file if data_file is not None else bundled_dataset_path(spec.name)
        smiles_column = spec.smiles_column
        label_columns = label_columns if label_columns is not None else spec.label_columns
        task_type = task_type if task_type is not None else spec.task_type
    if data_file is None:
        raise ValueError(
            f"give a data_file (CSV path) or a dataset_name (one of: {', '.join(sorted(MOLECULENET_DATASETS))})"
        )
    if task_type is not None and task_type not in TASK_TYPES:
        raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")

    path = Path(data_file)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    header = list(_read_csv(path, nrows=0).columns)
    check_csv_structure(path)
    label_columns = _resolve_label_columns(path, header, smiles_column, label_columns, text_column)
    string_columns = [smiles_column] + ([text_column] if text_column is not None else [])
    frame = _read_csv(path, usecols=[*string_columns, *label_columns], dtype=dict.fromkeys(string_columns, object))

    if frame.empty:
        raise ValueError(f"{path}: the file has a header but no data rows")
    labels = np.stack([_numeric_column(frame, column, path) for column in label_columns], axis=1)
    if task_type is None:
        task_type = "classification" if _all_binary(labels) else "regression"
    elif task_type == "classification":
        _check_binary(labels, label_columns, path)

    smiles = frame[smiles_column].fillna("").tolist()
    texts = frame[text_column].tolist() if text_column is not None else None
    excluded = _find_excluded_rows(smiles, labels, texts, num_workers)
    excluded_rows = {record.row for record in excluded}
    kept = np.array([row for row in range(len(frame)) if row not in excluded_rows], dtype=np.int64)
    table = MolecularTable(
        smiles=[smiles[row] for row in kept],
        labels=labels[kept].astype(np.float32),
        task_names=list(label_columns),
        task_type=task_type,
        source_rows=kept,
        invalid_rows=excluded,
        texts=[texts[row] for row in kept] if texts is not None else None,
        data_file=str(path),
        dataset_name=dataset_name,
    )
    if len(table) == 0:
        raise ValueError(f"{path}: no usable rows: {table.report(max_listed=3)}")
    if task_type == "classification":
        _check_both_classes(table, path)
    return table


def _check_both_classes(table: MolecularTable, path: Path) -> None:
    """Raise when no task has both classes in the usable rows (no split could train or score a classifier); warn
    about single-class tasks beside others, which train but cannot be learned or scored."""
    single_class = {}
    for name, column in zip(table.task_names, table.labels.T, strict=True):
        classes = np.unique(column[~np.isnan(column)])
        if classes.size < 2:
            single_class[name] = classes.tolist()
    described = ", ".join(f"{name!r} only {classes}" for name, classes in list(single_class.items())[:5])
    if len(single_class) == len(table.task_names):
        raise ValueError(
            f"{path}: no label column holds both classes in the {len(table)} usable rows ({described}): "
            "a classifier needs examples of each"
        )
    if single_class:
        logger.warning(
            "%s: %d task(s) hold one class only in the usable rows, so they cannot be learned or scored: %s",
            path,
            len(single_class),
            described,
        )


def _read_csv(path: Path, **options) -> pd.DataFrame:
    """`pd.read_csv`, naming the file in its errors."""
    try:
        # index_col=False: never take the first column for an index, which pandas does when every row has one
        # field more than the header (a trailing comma).
        return pd.read_csv(path, index_col=False, **options)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (expected a CSV header and rows)") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error}); save the CSV as UTF-8") from None


def check_csv_structure(path: str | Path) -> None:
    """Raise a ValueError for what pandas would silently turn into other data: a column name used twice (pandas
    renames the second 'y.1') and a row with more non-empty fields than the header has columns (pandas drops
    the extra fields, or shifts every column when the first row has them): typically an unquoted comma inside
    a text. Empty trailing fields and unnamed columns (a spreadsheet's export) hold nothing and pass."""
    path = Path(path)
    # pandas has no limit on a cell's size; the csv module's default (131,072 characters) would refuse a long text.
    limit = csv.field_size_limit(2**31 - 1)
    try:
        # Decompressed as pandas does (by the extension). Only the delimiters and quotes matter here (ASCII),
        # so undecodable bytes are replaced: pandas reports those where they matter.
        with get_handle(path, "r", encoding="utf-8-sig", errors="replace", compression="infer") as handles:
            records = csv.reader(handles.handle)
            header = next(records, [])
            named = [name for name in header if name]
            repeated = sorted({name for name in named if named.count(name) > 1})
            if repeated:
                raise ValueError(
                    f"{path}: the header names column(s) {repeated} more than once; give each column its own name"
                )
            # Rows are numbered as in every other message: data rows from 0, blank lines (which pandas skips)
            # not counted.
            for row, fields in enumerate(fields for fields in records if fields):
                if any(fields[len(header) :]):
                    raise ValueError(
                        f"{path}: row {row} has {len(fields)} fields but the header has {len(header)} columns; "
                        "quote cells that contain a comma"
                    )
    except csv.Error as error:
        raise ValueError(f"{path}: not a readable CSV ({error})") from None
    finally:
        csv.field_size_limit(limit)


def describe_columns(header: Sequence[str]) -> str:
    """The column names for an error message: quoted (a stray space shows), with a hint when the whole header
    is one name holding another separator (a CSV saved with ';' or tabs)."""
    names = ", ".join(repr(name) for name in header)
    separator = next((sep for sep in (";", "\t", "|") if len(header) == 1 and sep in header[0]), None)
    return names + (f" (the header looks {separator!r}-separated: save the file comma-separated)" if separator else "")


def _resolve_label_columns(
    path: Path,
    header: list[str],
    smiles_column: str,
    label_columns: Sequence[str] | None,
    text_column: str | None,
) -> list[str]:
    available = describe_columns(header)
    if smiles_column not in header:
        raise ValueError(f"{path}: no SMILES column {smiles_column!r}; columns are: {available}")
    if text_column is not None and text_column not in header:
        raise ValueError(f"{path}: no text column {text_column!r}; columns are: {available}")
    if label_columns is None:
        label_columns = [column for column in header if column not in (smiles_column, text_column)]
    missing = [column for column in label_columns if column not in header]
    if missing:
        raise ValueError(f"{path}: label column(s) {missing} not found; columns are: {available}")
    if not label_columns:
        raise ValueError(f"{path}: no label columns besides the SMILES/text columns")
    return list(label_columns)


def _numeric_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    not_numeric = frame[column].notna() & values.isna()
    if not_numeric.any():
        row = int(np.flatnonzero(not_numeric.to_numpy())[0])
        raise ValueError(
            f"{path}: label column {column!r} has a non-numeric value {frame[column].iloc[row]!r} in row {row}"
        )
    values = values.to_numpy(dtype=np.float64)
    # Labels are trained on as float32: anything beyond its range would become inf.
    out_of_range = np.abs(values) > np.finfo(np.float32).max
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(
            f"{path}: label column {column!r} has a value out of range, {str(frame[column].iloc[row])!r}, in row {row} "
            "(labels must be finite and within float32's range, about 3.4e38)"
        )
    return values


def _all_binary(labels: np.ndarray) -> bool:
    present = labels[~np.isnan(labels)]
    return bool(np.isin(present, (0.0, 1.0)).all())


def _check_binary(labels: np.ndarray, label_columns: list[str], path: Path) -> None:
    non_binary = ~np.isnan(labels) & ~np.isin(labels, (0.0, 1.0))
    if non_binary.any():
        row, task = (int(index) for index in np.argwhere(non_binary)[0])
        raise ValueError(
            f"{path}: classification labels must be 0 or 1, but column "
            f"{label_columns[task]!r} has {labels[row, task]:g} in row {row}"
        )


def _find_excluded_rows(
    smiles: list[str],
    labels: np.ndarray,
    texts: list[object] | None,
    num_workers: int,
) -> list[ExcludedRow]:
    """One record per unusable row, in row order; the first applicable reason wins."""
    _, failures = featurize_many(smiles, num_workers=num_workers)
    reasons = {failure.row: failure.reason for failure in failures}
    for unlabeled_row in np.flatnonzero(np.isnan(labels).all(axis=1)):
        reasons.setdefault(int(unlabeled_row), "all labels missing")
    if texts is not None:
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                reasons.setdefault(row, "text is empty")
    return [ExcludedRow(row, smiles[row], reasons[row]) for row in sorted(reasons)]


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
    scaffold_sets = sorted(_scaffold_sets(table.smiles), key=lambda members: (len(members), members[0]), reverse=True)
    parts: dict[str, list[int]] = {part: [] for part in SPLIT_PARTS}
    for scaffold_set in scaffold_sets:
        if len(parts["train"]) + len(scaffold_set) <= train_size:
            parts["train"].extend(scaffold_set)
        elif len(parts["valid"]) + len(scaffold_set) <= valid_size:
            parts["valid"].extend(scaffold_set)
        else:
            parts["test"].extend(scaffold_set)
    return {part: np.sort(np.array(members, dtype=np.int64)) for part, members in parts.items()}


def _scaffold_sets(smiles: list[str]) -> list[list[int]]:
    """Positions grouped by scaffold, groups in order of first occurrence."""
    groups: dict[str, list[int]] = {}
    for position, molecule_smiles in enumerate(smiles):
        groups.setdefault(murcko_scaffold(molecule_smiles), []).append(position)
    return list(groups.values())


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES without stereochemistry ('' for acyclic molecules)."""
    molecule = Chem.MolFromSmiles(smiles)
    if molecule is None:
        raise ValueError(f"RDKit could not parse SMILES {smiles!r}")
    return MurckoScaffold.MurckoScaffoldSmiles(mol=molecule, includeChirality=False)


def bundled_split_path(dataset_name: str, split_name: str) -> Path:
    """The benchmark split file data/splits/<dataset>/<split>.json[.gz] of the source checkout."""
    dataset_name = get_dataset_spec(dataset_name).name
    split_dir = Path(__file__).resolve().parents[2] / "data" / "splits" / dataset_name
    for suffix in (".json", ".json.gz"):
        candidate = split_dir / f"{split_name}{suffix}"
        if candidate.is_file():
            return candidate
    available = sorted(p.name for p in split_dir.glob("*.json*")) if split_dir.is_dir() else []
    raise FileNotFoundError(
        f"no split file {split_name!r} for dataset {dataset_name!r} in {split_dir} "
        f"(found: {', '.join(available) or 'nothing'}); the benchmark splits ship with the "
        "source repository, not with the installed package: pass split_file=<path> instead"
    )


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
