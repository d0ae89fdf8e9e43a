"""What the `protomol` subcommands share: the user-error type and its one-line report, the help formatter,
option types and groups, and reading the input CSV and writing per-row results."""

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from ..data import check_csv_structure, describe_columns
from ..loading import MODEL_DTYPES
from ..prediction import PARALLEL_CHUNK_SIZE, InvalidRowError


class UsageError(ValueError):
    """A problem the user can fix (missing file, column or model folder): reported in one line, exit code 2."""


# Featurization runs before the model, so its processes never compete with the model's threads; more than 8
# rarely pays for their start-up.
DEFAULT_FEATURIZATION_WORKERS = min(os.cpu_count() or 1, 8)
# Reported in one line with exit code 2 (FloatingPointError: the training loss became NaN or inf; OSError: a
# full disk, a folder that cannot be written, a file that is missing).
USER_ERRORS = (OSError, ValueError, FloatingPointError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the default of every option except required ones, which have none."""

    def _get_help_string(self, action):
        return action.help if action.required else super()._get_help_string(action)


def add_input_options(parser: argparse.ArgumentParser, output_help: str) -> None:
    """Options shared by predict and fingerprint: model, input CSV and its columns, output, batching."""
    parser.add_argument(
        "--model", required=True, help="Folder of a trained model (the --output_dir of `protomol train`)."
    )
    parser.add_argument("--input", required=True, help="CSV file with one molecule per row.")
    parser.add_argument("--output", required=True, help=output_help)
    parser.add_argument("--smiles_column", default="smiles", help="Column of --input holding the SMILES.")
    parser.add_argument(
        "--text_column",
        default=None,
        help="Column of --input with a description per molecule (an empty one makes the row invalid); without "
        "it, each molecule gets the kind of description the model was trained with (a model trained on a text "
        "column needs this).",
    )
    parser.add_argument("--batch_size", type=positive_int, default=64, help="Molecules per model call.")
    parser.add_argument(
        "--num_workers",
        type=positive_int,
        default=DEFAULT_FEATURIZATION_WORKERS,
        help="Processes that featurize the molecules (RDKit, descriptions, tokens) before the model runs "
        "(the CPU cores, at most 8). Inputs of at most "
        f"{PARALLEL_CHUNK_SIZE} molecules are featurized in this process.",
    )
    add_device_options(parser)


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """--device and --dtype, as the commands that run a model take them (the speed scripts too)."""
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Torch device that runs the model; the default is cuda when a GPU is visible, else cpu.",
    )
    parser.add_argument(
        "--dtype",
        choices=MODEL_DTYPES,
        default="float32",
        help="Precision of the model's weights and arithmetic; bfloat16 halves memory and is faster on recent "
        "GPUs, at about three significant digits per prediction.",
    )


def positive_int(text) -> int:
    """argparse type of counts that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def read_table(path, smiles_column, text_column) -> pd.DataFrame:
    """The CSV with every cell as written (no type or missing-value conversion), after checking its columns."""
    if not Path(path).is_file():
        raise UsageError(f"input file not found: {path}")
    try:
        check_csv_structure(path)
        # index_col=False: never take the first column for an index (which writing the output would drop).
        table = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path} as CSV: {error}") from None
    for kind, column in (("SMILES", smiles_column), ("text", text_column)):
        if column is not None and column not in table.columns:
            raise UsageError(
                f"{path} has no {kind} column {column!r}; available columns: {describe_columns(table.columns)}"
            )
    return table


def check_output_file(path: str) -> None:
    """Fail before the work rather than after it: the output must be a file, in a folder that can exist."""
    output = Path(path)
    if output.is_dir():
        raise UsageError(f"--output {path} is a folder: give a file name")
    existing = next(parent for parent in output.absolute().parents if parent.exists())
    if not existing.is_dir():
        raise UsageError(f"--output {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output {path}: the folder {existing} is not writable")


@contextmanager
def written_in_one_step(path: str) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it once the caller has written it: a run that fails while
    writing (a full disk) leaves the old file or none, never a truncated one that reads as a result. The
    temporary name keeps the suffix, which numpy's writers would otherwise append."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def call_per_row(function, model, processor, table, args):
    """`predict_smiles`, `predict_smiles_ensemble` (`model` = the members) or `embed_smiles` over the table's rows,
    with invalid rows handled as the options say."""
    texts = table[args.text_column].tolist() if args.text_column is not None else None
    try:
        return function(
            model,
            processor,
            table[args.smiles_column].tolist(),
            texts,
            batch_size=args.batch_size,
            invalid=args.invalid,
            progress=True,
            num_workers=args.num_workers,
        )
    except InvalidRowError as error:
        raise UsageError(
            f"data row {error.row} of {args.input} (0-based, header not counted): {error.reason}"
        ) from None


def free_column_name(name, taken) -> str:
    """`name`, or `name_predicted` (then `name_predicted_2`, ...) when taken; the result is marked taken."""
    candidate, number = name, 1
    while candidate in taken:
        candidate = f"{name}_predicted" + (f"_{number}" if number > 1 else "")
        number += 1
    taken.add(candidate)
    return candidate


def summary(verb, errors, where_to_look) -> str:
    """One line: how many rows were done and skipped, and where the reasons are."""
    skipped = sum(error is not None for error in errors)
    return f"{verb} {len(errors) - skipped} of {len(errors)} rows; skipped {skipped} ({where_to_look})"


def run_reporting_user_errors(program: str, function: Callable[..., object], *args: object) -> int:
    """Call `function(*args)`; return 0, or 2 after printing a problem with the input on one line.

    Bad input (files, columns, SMILES, labels, checkpoints) and a diverging loss raise ValueError and its
    kin with a message naming the row or key; the user gets that message, not a traceback. Set the
    environment variable PROTOMOL_TRACEBACK=1 to see the traceback too.
    """
    try:
        function(*args)
    except USER_ERRORS as error:
        if os.environ.get("PROTOMOL_TRACEBACK"):
            raise
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    return 0
