"""Load a ProtoMol from a local folder or a Hub repository, describe it and predict one molecule.

    python examples/load_local_or_hub.py runs/bace
    python examples/load_local_or_hub.py my-org/protomol-bace --revision <commit sha>
`trust_remote_code=True` runs the modeling code stored with the model: for a Hub repository, pin
--revision to a commit whose code you have reviewed.
"""

import argparse
from pathlib import Path

from transformers import AutoModel, AutoProcessor

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument(
    "model", nargs="?", default="runs/demo_bace_random_0", help="A local folder or a Hub repository id."
)
parser.add_argument("--revision", default=None, help="Branch, tag or commit of a Hub repository (default: main).")
parser.add_argument("--smiles", default="CC(=O)Oc1ccccc1C(=O)O", help="Molecule to predict.")
args = parser.parse_args()

source = "local folder" if Path(args.model).is_dir() else f"Hub repository at {args.revision or 'main'}"
model = AutoModel.from_pretrained(args.model, trust_remote_code=True, revision=args.revision)
processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True, revision=args.revision)
config = model.config
print(
    f"{args.model} ({source}): {config.problem_type} of tasks {config.task_names}, {model.num_parameters():,} parameters"
)
print(
    f"text: {processor.text_source} descriptions, {config.text_config.model_type} text model ({config.text_model_mode})"
)
print(model.predict(args.smiles, processor)[0])
