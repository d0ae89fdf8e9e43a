"""The `protomol` command: train a model, predict properties from a CSV, export molecular embeddings.

    protomol train --data_file my.csv --label_columns active --output_dir runs/mine
    protomol predict --model runs/mine --input new.csv --output predictions.csv
    protomol fingerprint --model runs/mine --input new.csv --output embeddings.npz

`protomol SUBCOMMAND --help` lists every option with its default. Also runs as `python -m protomol_hf.cli`.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModel, AutoProcessor, HfArgumentParser
from transformers.hf_argparser import DataClassType

from .prediction import INVALID_ROW_POLICIES, InvalidRowError, embed_smiles, predict_smiles
from .training import DataArguments, ModelArguments, ProtoMolTrainingArguments, run_training

# HfArgumentParser types the dataclasses it takes with its NewType `DataClassType`.
TRAIN_ARGUMENT_TYPES = tuple(DataClassType(cls) for cls in (ModelArguments, DataArguments, ProtoMolTrainingArguments))
FINGERPRINT_SUFFIXES = (".npz", ".npy")


class UsageError(Exception):
    """A problem the user can fix (missing file, column or model folder): reported in one line, exit code 2."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the default of every option except required ones, which have none."""

    def _get_help_string(self, action):
        return action.help if action.required else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The `protomol` parser with its train, predict and fingerprint subcommands."""
    parser = argparse.ArgumentParser(
        prog="protomol",
        description="ProtoMol molecular property prediction (molecular graph + text, prototypes).",
        epilog="Run `protomol SUBCOMMAND --help` for the options of each subcommand.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    train_options = HfArgumentParser(TRAIN_ARGUMENT_TYPES, add_help=False)
    train = subcommands.add_parser(
        "train",
        parents=[train_options],
        formatter_class=HelpFormatter,
        help="train a model on a bundled MoleculeNet set or your own CSV (the options of scripts/train.py)",
        description="Train ProtoMol on a bundled MoleculeNet set or your own CSV. Writes the best model, its "
        "processor, split.json and results.json to --output_dir, and prints the test metric as JSON.",
    )
    train.set_defaults(run=run_train)

    predict = subcommands.add_parser(
        "predict",
        formatter_class=HelpFormatter,
        help="predict every task of a trained model for the molecules of a CSV",
        description="Predict every task for each row of a CSV. The output keeps every input row, in order, with "
        "its columns, plus one column per task (probability for classification, value in the target's units "
        "for regression) and an `error` column naming why a row could not be predicted (empty otherwise). "
        "A task or `error` column name the input already uses gets the suffix `_predicted`.",
    )
    _add_input_options(predict, output_help="CSV file to write.")
    predict.add_argument(
        "--invalid",
        choices=INVALID_ROW_POLICIES,
        default="skip",
        help="What to do with a row whose SMILES (or text) cannot be used: skip it (its predictions stay empty "
        "and the error column gives the reason) or stop with exit code 2 at the first such row, naming its "
        "0-based data row number (the header is not counted).",
    )
    predict.set_defaults(run=run_predict)

    fingerprint = subcommands.add_parser(
        "fingerprint",
        formatter_class=HelpFormatter,
        help="export the learned embeddings and prototype similarities of the molecules of a CSV",
        description="Embed each valid molecule of a CSV with a trained model. A .npz output holds the arrays "
        "graph_embeds [n, hidden], text_embeds [n, hidden], fused_embeds [n, 2*hidden], "
        "graph_prototype_similarities and text_prototype_similarities [n, tasks*prototypes per task] for the "
        "n embedded molecules, row_index [n] (their 0-based CSV data rows) and errors [all rows] (the reason a "
        "row was skipped, empty for embedded rows). A .npy output holds fused_embeds for every CSV row, NaN in "
        "the rows of invalid molecules.",
    )
    _add_input_options(fingerprint, output_help="File to write: .npz (all arrays) or .npy (fused embeddings only).")
    fingerprint.set_defaults(run=run_fingerprint, invalid="skip")
    return parser


def _add_input_options(parser, output_help):
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
        "it, each molecule gets the kind of description the model was trained with.",
    )
    parser.add_argument("--batch_size", type=_positive_int, default=64, help="Molecules per model call.")
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="Torch device that runs the model; the default is cuda when a GPU is visible, else cpu.",
    )


def _positive_int(text) -> int:
    """argparse type of counts that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_train(args: argparse.Namespace) -> None:
    """`protomol train`: the training run of scripts/train.py."""
    model_args, data_args, training_args = HfArgumentParser(TRAIN_ARGUMENT_TYPES).parse_dict(
        vars(args), allow_extra_keys=True
    )
    results = run_training(model_args, data_args, training_args)
    if training_args.process_index == 0:
        metric = results["metric"]
        print(json.dumps({"test_" + metric: results["test"][metric], "output_dir": training_args.output_dir}))


def run_predict(args: argparse.Namespace) -> None:
    """`protomol predict`: one prediction per task for every CSV row, written next to the input columns."""
    table = _read_table(args.input, args.smiles_column, args.text_column)
    model, processor = _load_model(args.model, args.device)
    predictions, errors = _call_per_row(predict_smiles, model, processor, table, args)
    taken = set(table.columns)
    for task, name in enumerate(model.config.task_names):
        table[_free_column_name(name, taken)] = predictions[:, task]
    table[_free_column_name("error", taken)] = [error or "" for error in errors]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output, index=False)
    print(_summary("predicted", errors, "see the error column"))


def run_fingerprint(args: argparse.Namespace) -> None:
    """`protomol fingerprint`: embeddings and prototype similarities of every valid molecule of the CSV."""
    suffix = Path(args.output).suffix
    if suffix not in FINGERPRINT_SUFFIXES:
        raise UsageError(f"--output must end with .npz or .npy, got {args.output}")
    table = _read_table(args.input, args.smiles_column, args.text_column)
    model, processor = _load_model(args.model, args.device)
    embeddings, errors = _call_per_row(embed_smiles, model, processor, table, args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npy":
        np.save(args.output, embeddings["fused_embeds"])
        print(_summary("embedded", errors, "their rows are NaN"))
        return
    embedded_rows = np.array([row for row, error in enumerate(errors) if error is None], dtype=np.int64)
    np.savez(
        args.output,
        **{name: values[embedded_rows] for name, values in embeddings.items()},
        row_index=embedded_rows,
        errors=np.array([error or "" for error in errors], dtype=str),
    )
    print(_summary("embedded", errors, "see the errors array"))


def _read_table(path, smiles_column, text_column) -> pd.DataFrame:
    """The CSV with every cell as written (no type or missing-value conversion), after checking its columns."""
    if not Path(path).is_file():
        raise UsageError(f"input file not found: {path}")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path} as CSV: {error}") from None
    for kind, column in (("SMILES", smiles_column), ("text", text_column)):
        if column is not None and column not in table.columns:
            raise UsageError(f"{path} has no {kind} column {column!r}; available columns: {', '.join(table.columns)}")
    return table


def _load_model(model_dir, device):
    """The model (in eval mode, on `device`) and processor saved in `model_dir`."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise UsageError(f"model folder not found: {model_dir}")
    for required in ("config.json", "processor_config.json"):
        if not (folder / required).is_file():
            raise UsageError(
                f"{model_dir} has no {required}: not a saved ProtoMol model (give the --output_dir of `protomol train`)"
            )
    model = AutoModel.from_pretrained(str(folder), trust_remote_code=True).to(device).eval()
    processor = AutoProcessor.from_pretrained(str(folder), trust_remote_code=True)
    return model, processor


def _call_per_row(function, model, processor, table, args):
    """`predict_smiles` or `embed_smiles` over the table's rows, with invalid rows handled as the options say."""
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
        )
    except InvalidRowError as error:
        raise UsageError(
            f"data row {error.row} of {args.input} (0-based, header not counted): {error.reason}"
        ) from None


def _free_column_name(name, taken) -> str:
    """`name`, or `name_predicted` (then `name_predicted_2`, ...) when taken; the result is marked taken."""
    candidate, number = name, 1
    while candidate in taken:
        candidate = f"{name}_predicted" + (f"_{number}" if number > 1 else "")
        number += 1
    taken.add(candidate)
    return candidate


def _summary(verb, errors, where_to_look) -> str:
    skipped = sum(error is not None for error in errors)
    return f"{verb} {len(errors) - skipped} of {len(errors)} rows; skipped {skipped} ({where_to_look})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `protomol` command line (`argv` defaults to sys.argv[1:]); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (UsageError, FileNotFoundError, ValueError) as error:
        print(f"protomol: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
