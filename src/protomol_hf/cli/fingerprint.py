"""`protomol fingerprint`: the learned embeddings and prototype similarities of every valid molecule of a CSV."""

import argparse
from pathlib import Path

import numpy as np

from ..loading import load_single_model
from ..prediction import embed_smiles
from .common import (
    HelpFormatter,
    UsageError,
    add_input_options,
    call_per_row,
    check_output_file,
    read_table,
    summary,
    written_in_one_step,
)

FINGERPRINT_SUFFIXES = (".npz", ".npy")


def add_parser(subcommands) -> None:
    """Add `fingerprint` to the subcommands."""
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
    add_input_options(fingerprint, output_help="File to write: .npz (all arrays) or .npy (fused embeddings only).")
    fingerprint.set_defaults(run=run_fingerprint, invalid="skip")


def run_fingerprint(args: argparse.Namespace) -> None:
    """`protomol fingerprint`: embeddings and prototype similarities of every valid molecule of the CSV."""
    suffix = Path(args.output).suffix
    if suffix not in FINGERPRINT_SUFFIXES:
        raise UsageError(f"--output must end with .npz or .npy, got {args.output}")
    check_output_file(args.output)
    table = read_table(args.input, args.smiles_column, args.text_column)
    model, processor = load_single_model(args.model, args.device, args.dtype)
    embeddings, errors = call_per_row(embed_smiles, model, processor, table, args)
    if suffix == ".npy":
        with written_in_one_step(args.output) as output:
            np.save(output, embeddings["fused_embeds"])
        print(summary("embedded", errors, "their rows are NaN"))
        return
    embedded_rows = np.array([row for row, error in enumerate(errors) if error is None], dtype=np.int64)
    with written_in_one_step(args.output) as output:
        np.savez(
            output,
            **{name: values[embedded_rows] for name, values in embeddings.items()},
            row_index=embedded_rows,
            errors=np.array([error or "" for error in errors], dtype=str),
        )
    print(summary("embedded", errors, "see the errors array"))
