"""The `protomol` command: train a model, predict properties from a CSV, export molecular embeddings.

    protomol train --data_file my.csv --label_columns active --output_dir runs/mine
    protomol predict --model runs/mine --input new.csv --output predictions.csv
    protomol fingerprint --model runs/mine --input new.csv --output embeddings.npz
    protomol explain --model runs/mine --smiles "CC(=O)Oc1ccccc1C(=O)O" --output_dir explained/

`protomol SUBCOMMAND --help` lists every option with its default. Also runs as `python -m protomol_hf.cli`.
Each subcommand is one module of this package with `add_parser(subcommands)` and its `run_*` function.
"""

import argparse
from collections.abc import Sequence

from . import explain, fingerprint, predict, train
from .common import run_reporting_user_errors

SUBCOMMANDS = (train, predict, fingerprint, explain)


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
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `protomol` command line (`argv` defaults to sys.argv[1:]); returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_reporting_user_errors("protomol", args.run, args)
