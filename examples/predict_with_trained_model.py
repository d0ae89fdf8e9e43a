"""Predict with a trained ProtoMol checkpoint, as a user who only has the checkpoint folder would.

Run `make demo` first (it writes runs/demo_bace_random_0), then:
    .venv/bin/python examples/predict_with_trained_model.py [checkpoint_dir]
The checkpoint carries its own code, so only transformers, torch, torch-geometric and RDKit are needed.
"""

import sys

import torch
from transformers import AutoModel, AutoProcessor

checkpoint = sys.argv[1] if len(sys.argv) > 1 else "runs/demo_bace_random_0"
model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)

smiles = [
    "CC(=O)Oc1ccccc1C(=O)O",  # aspirin
    "O=C(N[C@@H](Cc1ccccc1)[C@H](O)CNC1CC1)c1cccc(c1)C(=O)N(C)C",  # a BACE-like inhibitor scaffold
]
with torch.no_grad():
    logits = model(**processor(smiles=smiles, return_tensors="pt")).logits
for molecule, row in zip(smiles, logits):
    values = torch.sigmoid(row) if model.config.problem_type == "classification" else row
    print(molecule, dict(zip(model.config.task_names, values.tolist())))
