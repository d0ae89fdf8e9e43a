"""Fine-tune ProtoMol on your own CSV (a SMILES column and label columns), then predict its test molecules.

    python examples/finetune_on_your_csv.py --csv my.csv --label_columns active --split scaffold --output_dir runs/mine
Every other option of scripts/train.py (see its --help) is passed through, e.g. --hidden_size 256 or
--text_model path/to/text_model. Without a CSV it trains on the 40-molecule test fixture.
"""

import argparse
import json
from pathlib import Path

import pandas as pd
from transformers import HfArgumentParser

from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.training import DataArguments, ModelArguments, ProtoMolTrainingArguments, run_training

TINY_CSV = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tiny_classification.csv"

parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[0], epilog="Other options go to scripts/train.py.", allow_abbrev=False
)
parser.add_argument("--csv", default=str(TINY_CSV), help="CSV file with a SMILES column and label columns.")
parser.add_argument("--smiles_column", default="smiles")
parser.add_argument("--label_columns", nargs="+", default=None, help="Label columns (default: every other column).")
parser.add_argument("--split", choices=["random", "scaffold"], default="random", help="How to split train/valid/test.")
parser.add_argument("--epochs", type=float, default=30.0)
parser.add_argument("--output_dir", default="runs/my_csv")
args, train_options = parser.parse_known_args()

train_argv = [
    "--data_file",
    args.csv,
    "--smiles_column",
    args.smiles_column,
    "--split",
    args.split,
    "--num_train_epochs",
    str(args.epochs),
    "--output_dir",
    args.output_dir,
    *train_options,
]
if args.label_columns:
    train_argv += ["--label_columns", *args.label_columns]
argument_groups = HfArgumentParser((ModelArguments, DataArguments, ProtoMolTrainingArguments))
results = run_training(*argument_groups.parse_args_into_dataclasses(args=train_argv))
metric = results["metric"]
print(f"{metric}: valid {results['valid'][metric]:.3f}, test {results['test'][metric]:.3f} -> {args.output_dir}")

model = ProtoMolForMolecularPropertyPrediction.from_pretrained(args.output_dir)
processor = ProtoMolProcessor.from_pretrained(args.output_dir)
test_rows = json.loads((Path(args.output_dir) / "split.json").read_text())["test"]
test_smiles = pd.read_csv(args.csv)[args.smiles_column].iloc[test_rows[:5]].tolist()
for row in model.predict(test_smiles, processor):
    print(json.dumps(row))
