"""`protomol train`: the training run of scripts/train.py, its options those of the three argument groups."""

import argparse
import json

import torch.distributed as dist
from transformers import HfArgumentParser
from transformers.hf_argparser import DataClassType

from ..training import DataArguments, ModelArguments, ProtoMolTrainingArguments, run_training
from .common import HelpFormatter

# HfArgumentParser types the dataclasses it takes with its NewType `DataClassType`.
TRAIN_ARGUMENT_TYPES = tuple(DataClassType(cls) for cls in (ModelArguments, DataArguments, ProtoMolTrainingArguments))

TRAIN_DESCRIPTION = (
    "Train ProtoMol on a bundled MoleculeNet set or your own CSV. Writes to --output_dir the best model on the "
    "validation metric and its processor, split.json (CSV row indices), results.json, test_predictions.csv, "
    "trainer_state.json and the last checkpoint-N folders, and prints the test metric as JSON."
)


def add_parser(subcommands) -> None:
    """Add `train` to the subcommands."""
    train_options = HfArgumentParser(TRAIN_ARGUMENT_TYPES, add_help=False)
    train = subcommands.add_parser(
        "train",
        parents=[train_options],
        formatter_class=HelpFormatter,
        help="train a model on a bundled MoleculeNet set or your own CSV (the options of scripts/train.py)",
        description=TRAIN_DESCRIPTION,
    )
    train.set_defaults(run=run_train)


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
