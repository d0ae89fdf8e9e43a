#!/usr/bin/env python
"""The main job (`make demo`): train the default ProtoMol on BACE, fixed split random_0, print test ROC-AUC.

Uses the embedded all-MiniLM-L6-v2 text model (frozen, token states cached) and template texts.
Extra arguments are passed to scripts/train.py, e.g. `python scripts/demo.py --num_train_epochs 5`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train import main

DEMO_ARGS = [
    "--dataset_name",
    "bace",
    "--split_file",
    "random_0",
    "--output_dir",
    "runs/demo_bace_random_0",
    "--num_train_epochs",
    "30",
    "--early_stopping_patience",
    "10",
]

if __name__ == "__main__":
    sys.exit(main(DEMO_ARGS + sys.argv[1:]))
