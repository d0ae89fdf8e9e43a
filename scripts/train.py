#!/usr/bin/env python
"""Train ProtoMol on a bundled MoleculeNet set or your own CSV.

Examples:
    python scripts/train.py --dataset_name bace --split_file random_0 --output_dir runs/bace
    python scripts/train.py --data_file my.csv --label_columns active --split scaffold --output_dir runs/mine
    accelerate launch --config_file configs/accelerate_ddp.yaml scripts/train.py --dataset_name bace ...

Writes the best model and processor (loadable with
`AutoModel.from_pretrained(output_dir, trust_remote_code=True)`), split.json and results.json.
"""

import sys

from transformers import HfArgumentParser

from protomol_hf.cli.common import HelpFormatter, run_reporting_user_errors
from protomol_hf.cli.train import TRAIN_ARGUMENT_TYPES, TRAIN_DESCRIPTION, train_and_report


def main(argv=None):
    parser = HfArgumentParser(
        TRAIN_ARGUMENT_TYPES,
        description=TRAIN_DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    try:
        model_args, data_args, training_args, unknown = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True
        )
    except ValueError as error:  # an argument group's own check, e.g. a missing --output_dir
        parser.error(str(error))
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (see --help)")
    return run_reporting_user_errors("train.py", train_and_report, model_args, data_args, training_args)


if __name__ == "__main__":
    sys.exit(main())
