"""The `protomol` command: train a model, predict properties from a CSV, export molecular embeddings.

    protomol train --data_file my.csv --label_columns active --output_dir runs/mine
    protomol predict --model runs/mine --input new.csv --output predictions.csv
    protomol fingerprint --model runs/mine --input new.csv --output embeddings.npz
    protomol explain --model runs/mine --smiles "CC(=O)Oc1ccccc1C(=O)O" --output_dir explained/

`protomol SUBCOMMAND --help` lists every option with its default. Also runs as `python -m protomol_hf.cli`.
"""

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from safetensors import SafetensorError
from transformers import AutoModel, AutoProcessor, HfArgumentParser
from transformers.hf_argparser import DataClassType

from .data import check_csv_structure, describe_columns
from .explanation import draw_atom_importance, explain_molecule, require_cross_attention
from .prediction import (
    INVALID_ROW_POLICIES,
    PARALLEL_CHUNK_SIZE,
    InvalidRowError,
    embed_smiles,
    predict_smiles,
    predict_smiles_ensemble,
)
from .training import ENSEMBLE_FILE, DataArguments, ModelArguments, ProtoMolTrainingArguments, run_training

# HfArgumentParser types the dataclasses it takes with its NewType `DataClassType`.
TRAIN_ARGUMENT_TYPES = tuple(DataClassType(cls) for cls in (ModelArguments, DataArguments, ProtoMolTrainingArguments))
FINGERPRINT_SUFFIXES = (".npz", ".npy")


class UsageError(Exception):
    """A problem the user can fix (missing file, column or model folder): reported in one line, exit code 2."""


MODEL_DTYPES = ("float32", "bfloat16", "float16")
# Featurization runs before the model, so its processes never compete with the model's threads; more than 8
# rarely pays for their start-up.
DEFAULT_FEATURIZATION_WORKERS = min(os.cpu_count() or 1, 8)
# Reported in one line with exit code 2 (FloatingPointError: the training loss became NaN or inf).
USER_ERRORS = (UsageError, FileNotFoundError, ValueError, FloatingPointError)


TRAIN_DESCRIPTION = (
    "Train ProtoMol on a bundled MoleculeNet set or your own CSV. Writes to --output_dir the best model on the "
    "validation metric and its processor, split.json (CSV row indices), results.json, test_predictions.csv, "
    "trainer_state.json and the last checkpoint-N folders, and prints the test metric as JSON."
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows the default of every option except required ones, which have none."""

    def _get_help_string(self, action):
        return action.help if action.required else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The `protomol` parser with its train, predict, fingerprint and explain subcommands."""
    parser = argparse.ArgumentParser(
        prog="protomol",
        description="ProtoMol molecular property prediction (molecular graph + text, prototypes).",
        epilog="Run `protomol SUBCOMMAND --help` for the options of each subcommand. Problems with the input are "
        "reported in one line with exit code 2; set PROTOMOL_TRACEBACK=1 to see the traceback as well.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    train_options = HfArgumentParser(TRAIN_ARGUMENT_TYPES, add_help=False)
    train = subcommands.add_parser(
        "train",
        parents=[train_options],
        formatter_class=HelpFormatter,
        help="train a model on a bundled MoleculeNet set or your own CSV (the options of scripts/train.py)",
        description=TRAIN_DESCRIPTION,
    )
    train.set_defaults(run=run_train)

    predict = subcommands.add_parser(
        "predict",
        formatter_class=HelpFormatter,
        help="predict every task of a trained model for the molecules of a CSV",
        description="Predict every task for each row of a CSV. The output keeps every input row, in order, with "
        "its columns, plus one column per task (probability for classification, value in the target's units "
        "for regression) and an `error` column naming why a row could not be predicted (empty otherwise). "
        "For an ensemble (trained with --ensemble_size) the task columns hold the members' mean and a "
        "<task>_std column their standard deviation. A task or `error` column name the input already uses gets "
        "the suffix `_predicted`.",
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

    explain = subcommands.add_parser(
        "explain",
        formatter_class=HelpFormatter,
        help="show which atoms and words a prediction drew on and which prototypes the molecule is near",
        description="Explain the predictions for a few molecules. For molecule i, --output_dir receives "
        "molecule_<i>.json (predictions; each atom's importance, the attention it receives from the description's "
        "tokens averaged over heads, tokens and fusion layers, summing to 1; the most attended tokens; per task the "
        "nearest prototypes of each modality with their class and cosine similarity) and molecule_<i>.png (the "
        "molecule with atoms shaded white to red from least to most important, atom indices shown). "
        "explanations.json lists every molecule with its files or the reason it was skipped.",
    )
    explain.add_argument(
        "--model", required=True, help="Folder of a trained model (the --output_dir of `protomol train`)."
    )
    explain.add_argument("--smiles", required=True, nargs="+", help="One or more SMILES to explain.")
    explain.add_argument(
        "--text",
        nargs="+",
        default=None,
        help="A description per SMILES, in the same order; without it, each molecule gets the kind of "
        "description the model was trained with.",
    )
    explain.add_argument("--output_dir", required=True, help="Folder for the JSON and PNG files.")
    explain.add_argument(
        "--top_prototypes", type=positive_int, default=3, help="Nearest prototypes listed per task and modality."
    )
    explain.add_argument("--top_tokens", type=positive_int, default=10, help="Most attended tokens listed.")
    explain.add_argument(
        "--invalid",
        choices=INVALID_ROW_POLICIES,
        default="skip",
        help="What to do with a SMILES that cannot be used: skip it (explanations.json gives the reason) or stop "
        "with exit code 2, naming its 0-based position among --smiles.",
    )
    add_device_options(explain)
    explain.set_defaults(run=run_explain)
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


def run_train(args: argparse.Namespace) -> None:
    """`protomol train`: the training run of scripts/train.py."""
    model_args, data_args, training_args = HfArgumentParser(TRAIN_ARGUMENT_TYPES).parse_dict(
        vars(args), allow_extra_keys=True
    )
    train_and_report(model_args, data_args, training_args)


def train_and_report(
    model_args: ModelArguments, data_args: DataArguments, training_args: ProtoMolTrainingArguments
) -> None:
    """Run the training and print the test metric and output folder as one JSON line (main process only)."""
    try:
        results = run_training(model_args, data_args, training_args)
    finally:
        # Leave the process group of a multi-process launch before exiting: a rank that exits with it alive
        # can abort in a communication thread's destructor ("terminate called without an active exception").
        if dist.is_initialized():
            dist.destroy_process_group()
    if training_args.process_index == 0:
        metric = results["metric"]
        print(json.dumps({"test_" + metric: results["test"][metric], "output_dir": training_args.output_dir}))


def run_predict(args: argparse.Namespace) -> None:
    """`protomol predict`: one prediction per task for every CSV row, written next to the input columns."""
    _check_output_file(args.output)
    table = _read_table(args.input, args.smiles_column, args.text_column)
    models, processor = _load_models(args.model, args.device, args.dtype)
    if len(models) == 1:
        predictions, errors = _call_per_row(predict_smiles, models[0], processor, table, args)
        spread = None
    else:
        predictions, spread, errors = _call_per_row(predict_smiles_ensemble, models, processor, table, args)
    taken = set(table.columns)
    for task, name in enumerate(models[0].config.task_names):
        column = _free_column_name(name, taken)
        table[column] = predictions[:, task]
        if spread is not None:
            table[_free_column_name(f"{column}_std", taken)] = spread[:, task]
    table[_free_column_name("error", taken)] = [error or "" for error in errors]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    # Python's csv writer leaves a lone "\r" inside a cell unquoted, which readers take for a line break:
    # quote every cell when an input cell holds one, so each row reads back as written.
    has_carriage_return = table.select_dtypes(exclude="number").apply(lambda column: column.str.contains("\r")).any()
    table.to_csv(args.output, index=False, quoting=csv.QUOTE_ALL if has_carriage_return.any() else csv.QUOTE_MINIMAL)
    print(_summary("predicted", errors, "see the error column"))


def run_fingerprint(args: argparse.Namespace) -> None:
    """`protomol fingerprint`: embeddings and prototype similarities of every valid molecule of the CSV."""
    suffix = Path(args.output).suffix
    if suffix not in FINGERPRINT_SUFFIXES:
        raise UsageError(f"--output must end with .npz or .npy, got {args.output}")
    _check_output_file(args.output)
    table = _read_table(args.input, args.smiles_column, args.text_column)
    model, processor = _load_single_model(args.model, args.device, args.dtype)
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


def run_explain(args: argparse.Namespace) -> None:
    """`protomol explain`: a JSON and a PNG per molecule, and explanations.json listing them."""
    if args.text is not None and len(args.text) != len(args.smiles):
        raise UsageError(f"got {len(args.text)} --text values for {len(args.smiles)} --smiles")
    model, processor = _load_single_model(args.model, args.device, args.dtype)
    require_cross_attention(model.config)
    if args.text is None and processor.text_source == "given":
        raise UsageError("this model was trained with texts from a data column: give one --text per --smiles")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for position, smiles in enumerate(args.smiles):
        text = args.text[position] if args.text is not None else None
        entry: dict[str, object] = {"index": position, "smiles": smiles}
        try:
            explanation = explain_molecule(
                model, processor, smiles, text, top_prototypes=args.top_prototypes, top_tokens=args.top_tokens
            )
        except ValueError as error:  # an invalid SMILES or empty text (ProtoMolFeaturizationError is one)
            reason = getattr(error, "reason", None) or str(error)
            if args.invalid == "error":
                raise UsageError(f"--smiles {position} ({smiles!r}): {reason}") from None
            index.append({**entry, "error": reason})
            continue
        json_path, png_path = output_dir / f"molecule_{position}.json", output_dir / f"molecule_{position}.png"
        json_path.write_text(json.dumps(explanation, indent=2))
        legend = ", ".join(f"{task} {value:.3g}" for task, value in explanation["predictions"].items())
        draw_atom_importance(smiles, [atom["importance"] for atom in explanation["atoms"]], png_path, legend=legend)
        index.append({**entry, "json": json_path.name, "png": png_path.name, "error": None})
    (output_dir / "explanations.json").write_text(json.dumps(index, indent=2))
    print(_summary("explained", [entry["error"] for entry in index], f"see {output_dir / 'explanations.json'}"))


def _load_single_model(model_dir, device, dtype):
    """The one model and processor in `model_dir`; an ensemble folder is refused (name one member)."""
    if (Path(model_dir) / ENSEMBLE_FILE).is_file():
        raise UsageError(f"{model_dir} holds an ensemble: give one of its members, e.g. {Path(model_dir) / 'member_0'}")
    models, processor = _load_models(model_dir, device, dtype)
    return models[0], processor


def _load_models(model_dir, device, dtype):
    """The models (in eval mode, on `device`, in `dtype`) saved in `model_dir`, all members of an ensemble folder, and the
    processor (an ensemble's members share their processor settings; the first member's is used)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise UsageError(f"model folder not found: {model_dir}")
    check_device(device)
    if (folder / ENSEMBLE_FILE).is_file():
        try:
            member_dirs = [folder / name for name in json.loads((folder / ENSEMBLE_FILE).read_text())["members"]]
        except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
            raise UsageError(
                f"{folder / ENSEMBLE_FILE} is not an ensemble file written by training: {error!r}"
            ) from None
        loaded = [_load_model(member, device, dtype) for member in member_dirs]
        models = [model for model, _ in loaded]
        # Averaging is only meaningful over members that predict the same tasks in the same units.
        predicts = [(model.config.problem_type, model.config.task_names) for model in models]
        for member_dir, member_predicts in zip(member_dirs, predicts, strict=True):
            if member_predicts != predicts[0]:
                raise UsageError(
                    f"{member_dir} predicts {member_predicts[0]} of {member_predicts[1]}, but {member_dirs[0]} "
                    f"{predicts[0][0]} of {predicts[0][1]}: an ensemble's members must predict the same tasks"
                )
        return models, loaded[0][1]
    model, processor = _load_model(folder, device, dtype)
    return [model], processor


def check_device(device: str) -> None:
    """Raise a UsageError for a `--device` that torch does not know or this machine does not have."""
    try:
        device_type = torch.device(device).type
    except RuntimeError:
        raise UsageError(f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if device_type != "cpu" and (accelerator is None or accelerator.type != device_type):
        raise UsageError(f"--device {device}: this machine has no such device")


def _check_output_file(path: str) -> None:
    """Fail before the work rather than after it: the output must be a file, in a folder that can exist."""
    output = Path(path)
    if output.is_dir():
        raise UsageError(f"--output {path} is a folder: give a file name")
    existing = next(parent for parent in output.absolute().parents if parent.exists())
    if not existing.is_dir():
        raise UsageError(f"--output {path}: {existing} is a file, not a folder")


def _load_model(folder: Path, device, dtype):
    """The model (in eval mode, on `device`, in `dtype`) and processor saved in `folder`."""
    if not folder.is_dir():
        raise UsageError(f"model folder not found: {folder}")
    for required in ("config.json", "processor_config.json"):
        if not (folder / required).is_file():
            raise UsageError(
                f"{folder} has no {required}: not a saved ProtoMol model (give the --output_dir of `protomol train`)"
            )
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"{folder / 'config.json'} is not valid JSON: {error}") from None
    if model_type != "protomol":
        raise UsageError(f"{folder} holds a {model_type!r} model, not a ProtoMol one")
    try:
        model = AutoModel.from_pretrained(str(folder), trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(str(folder), trust_remote_code=True)
    # A weights or tokenizer file that is missing or truncated (OSError, safetensors' error); a mismatch with
    # the config is a ValueError that names the weights.
    except (OSError, SafetensorError) as error:
        raise UsageError(f"cannot load the model in {folder}: {error}") from None
    return model.to(device=device, dtype=getattr(torch, dtype)).eval(), processor


def _call_per_row(function, model, processor, table, args):
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
    return run_reporting_user_errors("protomol", args.run, args)


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


if __name__ == "__main__":
    sys.exit(main())
