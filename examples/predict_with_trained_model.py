"""Predict with a trained ProtoMol, as a user who only has its folder or Hub repository would.

    python examples/predict_with_trained_model.py [MODEL] [SMILES ...]
MODEL defaults to runs/demo_bace_random_0 (written by `make demo`). Prints one JSON line per molecule:
{"smiles", "predictions": {task: value}, "error"}; an invalid SMILES gets an error instead of predictions.
"""

import json
import sys

from transformers import AutoModel, AutoProcessor

model_path = sys.argv[1] if len(sys.argv) > 1 else "runs/demo_bace_random_0"
smiles = sys.argv[2:] or ["CC(=O)Oc1ccccc1C(=O)O", "O=C(N[C@@H](Cc1ccccc1)[C@H](O)CNC1CC1)c1cccc(c1)C(=O)N(C)C"]
model = AutoModel.from_pretrained(model_path, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(model_path, trust_remote_code=True)
for row in model.predict(smiles, processor):
    print(json.dumps(row))
