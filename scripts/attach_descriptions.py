#!/usr/bin/env python
"""Attach descriptions from another CSV to the molecules of a bundled set (or your CSV), matched by molecule.

The output has the target's rows in the target's order (so bundled split files such as random_0 still
apply) and its columns, plus one text column. A molecule is matched by its SMILES string, or else by RDKit's
canonical SMILES of both sides (stereochemistry kept). When the descriptions file lists a molecule twice, the
first description is used. Train on the result with

    python scripts/train.py --dataset_name freesolv --data_file OUT.csv --text_column description ...

Examples:
    python scripts/attach_descriptions.py --dataset_name freesolv \\
        --descriptions benchmarks/text/freesolv_llm_descriptions_gptmolberta_fork.csv \\
        --description_column Descriptions --output benchmarks/text/freesolv_llm.csv
    python scripts/attach_descriptions.py --input my.csv --descriptions texts.csv --missing template \\
        --output my_with_texts.csv

A target molecule without a description is an error naming the rows, unless --missing template fills it
with ProtoMol's RDKit template description (and the summary counts them).
"""

import argparse
import sys
from pathlib import Path

import pandas as pd
from rdkit import Chem, RDLogger

from protomol_hf import ProtoMolFeaturizationError, describe_molecule
from protomol_hf.cli import UsageError, run_reporting_user_errors
from protomol_hf.data import bundled_dataset_path

PROGRAM = "attach_descriptions.py"
MAX_ROWS_NAMED = 20


def build_parser() -> argparse.ArgumentParser:
    """The command line options, each with its default in --help."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--dataset_name", help="Bundled set whose rows get descriptions (e.g. freesolv).")
    target.add_argument("--input", type=Path, help="Your CSV whose rows get descriptions.")
    parser.add_argument("--smiles_column", default="smiles", help="SMILES column of the target.")
    parser.add_argument("--descriptions", type=Path, required=True, help="CSV with a SMILES and a text column.")
    parser.add_argument("--descriptions_smiles_column", default="smiles", help="SMILES column of --descriptions.")
    parser.add_argument("--description_column", default="description", help="Text column of --descriptions.")
    parser.add_argument("--text_column", default="description", help="Name of the text column in the output.")
    parser.add_argument(
        "--missing",
        choices=["error", "template"],
        default="error",
        help="What a target molecule without a description gets: an error naming the rows, or the RDKit "
        "template description.",
    )
    parser.add_argument("--output", type=Path, required=True, help="CSV to write.")
    return parser


def canonical(smiles: str) -> str | None:
    """RDKit canonical SMILES with stereochemistry, or None when RDKit cannot parse it."""
    molecule = Chem.MolFromSmiles(smiles)
    return None if molecule is None else Chem.MolToSmiles(molecule)


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """The CSV as strings (values written back exactly), after checking that `columns` exist."""
    if not path.is_file():
        raise UsageError(f"file {path} does not exist")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise UsageError(f"{path} has no column {', '.join(map(repr, absent))} (columns: {', '.join(frame.columns)})")
    return frame


def attach(args: argparse.Namespace) -> None:
    RDLogger.DisableLog("rdApp.*")  # unparsable SMILES are counted below instead of logged one by one
    target_path = bundled_dataset_path(args.dataset_name) if args.dataset_name else args.input
    target = read_csv(target_path, [args.smiles_column])
    if args.text_column in target.columns:
        raise UsageError(f"{target_path} already has a column {args.text_column!r}; choose another --text_column")
    source = read_csv(args.descriptions, [args.descriptions_smiles_column, args.description_column])
    source = source[source[args.description_column].str.strip() != ""]

    by_string: dict[str, str] = {}
    by_canonical: dict[str, str] = {}
    for smiles, text in zip(source[args.descriptions_smiles_column], source[args.description_column], strict=True):
        by_string.setdefault(smiles, text)
        key = canonical(smiles)
        if key is not None:
            by_canonical.setdefault(key, text)

    texts, missing, unparsable, by_canonical_count = [], [], [], 0
    for row, smiles in enumerate(target[args.smiles_column]):
        text = by_string.get(smiles)
        if text is None:
            key = canonical(smiles)
            text = by_canonical.get(key) if key is not None else None
            by_canonical_count += text is not None
        if text is None:
            missing.append(row)
            if args.missing == "template":
                try:
                    text = describe_molecule(smiles)
                except ProtoMolFeaturizationError:
                    text = ""  # training reports the unparsable SMILES with its row
                    unparsable.append(row)
        texts.append(text or "")
    if missing and args.missing == "error":
        named = ", ".join(map(str, missing[:MAX_ROWS_NAMED])) + (" ..." if len(missing) > MAX_ROWS_NAMED else "")
        raise UsageError(
            f"{len(missing)} of {len(target)} rows of {target_path} have no description in {args.descriptions} "
            f"(rows {named}; 0-based, header not counted); pass --missing template to fill them"
        )
    target[args.text_column] = texts
    args.output.parent.mkdir(parents=True, exist_ok=True)
    target.to_csv(args.output, index=False)
    print(
        f"wrote {args.output}: {len(target)} rows; {len(target) - len(missing)} described "
        f"({by_canonical_count} matched by canonical SMILES), {len(missing) - len(unparsable)} given the template "
        f"description" + (f", {len(unparsable)} left empty: RDKit cannot parse their SMILES" if unparsable else "")
    )


def main(argv: list[str] | None = None) -> int:
    return run_reporting_user_errors(PROGRAM, attach, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
