"""Molecular property tables: a CSV file read, checked and parsed into a :class:`MolecularTable`.

Row numbers used throughout (reports, errors, split files) are 0-based indices of the data rows
in the CSV file as stored, header excluded: the indices the bundled benchmark split files use.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.common import get_handle
from rdkit import Chem

from ..featurization_protomol import FeaturizationFailure, parse_many
from .registry import MOLECULENET_DATASETS, TASK_TYPES, TaskType, bundled_dataset_path, get_dataset_spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExcludedRow:
    """A CSV row left out of a table, and why."""

    row: int
    smiles: str
    reason: str


@dataclass
class MolecularTable:
    """The usable rows of a CSV file, plus a record of every row that was left out.

    ``molecules[i]`` is the RDKit molecule of ``smiles[i]``, parsed once when the file was read (the graph,
    the description and the scaffold are all built from it); ``labels`` is float32 [num_rows, num_tasks]
    with NaN for a missing label; ``source_rows[i]`` is the CSV row that kept row ``i`` came from.
    """

    smiles: list[str]
    molecules: list[Chem.Mol] = field(repr=False)
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
    molecules, failures = parse_many(smiles, num_workers=num_workers)
    excluded = _find_excluded_rows(smiles, failures, labels, texts)
    excluded_rows = {record.row for record in excluded}
    kept = np.array([row for row in range(len(frame)) if row not in excluded_rows], dtype=np.int64)
    table = MolecularTable(
        smiles=[smiles[row] for row in kept],
        molecules=[molecules[row] for row in kept],
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
    failures: list[FeaturizationFailure],
    labels: np.ndarray,
    texts: list[object] | None,
) -> list[ExcludedRow]:
    """One record per unusable row, in row order; the first applicable reason wins (a SMILES that does not
    parse, then missing labels, then an empty text)."""
    reasons = {failure.row: failure.reason for failure in failures}
    for unlabeled_row in np.flatnonzero(np.isnan(labels).all(axis=1)):
        reasons.setdefault(int(unlabeled_row), "all labels missing")
    if texts is not None:
        for row, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                reasons.setdefault(row, "text is empty")
    return [ExcludedRow(row, smiles[row], reasons[row]) for row in sorted(reasons)]
