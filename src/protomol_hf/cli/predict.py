"""`protomol predict`: one prediction per task for every CSV row, written next to the input columns."""

import argparse
import csv

from ..ensemble import predict_smiles_ensemble
from ..loading import load_models
from ..prediction import INVALID_ROW_POLICIES, predict_smiles
from .common import (
    HelpFormatter,
    add_input_options,
    call_per_row,
    check_output_file,
    free_column_name,
    read_table,
    summary,
    written_in_one_step,
)


def add_parser(subcommands) -> None:
    """Add `predict` to the subcommands."""
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
    add_input_options(predict, output_help="CSV file to write.")
    predict.add_argument(
        "--invalid",
        choices=INVALID_ROW_POLICIES,
        default="skip",
        help="What to do with a row whose SMILES (or text) cannot be used: skip it (its predictions stay empty "
        "and the error column gives the reason) or stop with exit code 2 at the first such row, naming its "
        "0-based data row number (the header is not counted).",
    )
    predict.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> None:
    """`protomol predict`: one prediction per task for every CSV row, written next to the input columns."""
    check_output_file(args.output)
    table = read_table(args.input, args.smiles_column, args.text_column)
    models, processor = load_models(args.model, args.device, args.dtype)
    if len(models) == 1:
        predictions, errors = call_per_row(predict_smiles, models[0], processor, table, args)
        spread = None
    else:
        predictions, spread, errors = call_per_row(predict_smiles_ensemble, models, processor, table, args)
    taken = set(table.columns)
    for task, name in enumerate(models[0].config.task_names):
        column = free_column_name(name, taken)
        table[column] = predictions[:, task]
        if spread is not None:
            table[free_column_name(f"{column}_std", taken)] = spread[:, task]
    table[free_column_name("error", taken)] = [error or "" for error in errors]
    # Python's csv writer leaves a lone "\r" inside a cell unquoted, which readers take for a line break:
    # quote every cell when an input cell holds one, so each row reads back as written.
    has_carriage_return = table.select_dtypes(exclude="number").apply(lambda column: column.str.contains("\r")).any()
    with written_in_one_step(args.output) as output:
        table.to_csv(output, index=False, quoting=csv.QUOTE_ALL if has_carriage_return.any() else csv.QUOTE_MINIMAL)
    print(summary("predicted", errors, "see the error column"))
