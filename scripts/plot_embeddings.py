#!/usr/bin/env python
"""t-SNE of a trained model's prototype space: molecules of one split part and the learned prototypes.

Both modalities are shown where the model compares them with the prototypes: each molecule's graph and
text summaries after their projections into the prototype space, L2-normalised (as the cosine
similarities see them), together with the normalised prototypes of one task. Molecules are coloured by
their label (grey where missing), prototypes by the class they anchor. Writes the PNG and a CSV of the
2-D coordinates next to it.

    python scripts/plot_embeddings.py --model runs/bace --output docs/figures/bace_tsne.png
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.manifold import TSNE

from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.data import load_split_file, load_table
from protomol_hf.prediction import embed_smiles

CLASS_COLOURS = ("#3b75af", "#d1495b")  # class 0, class 1 (further regression bins use the colour cycle)
MISSING_COLOUR = "#b0b0b0"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="Trained model folder (with its split.json).")
    parser.add_argument("--output", type=Path, required=True, help="PNG to write (the CSV gets the same name).")
    parser.add_argument("--part", default="test", choices=["train", "valid", "test"], help="Split part plotted.")
    parser.add_argument("--task", default=None, help="Task whose labels and prototypes are shown (default: first).")
    parser.add_argument(
        "--data_file", default=None, help="The training CSV, when the model was not trained on a bundled set."
    )
    parser.add_argument(
        "--perplexity", type=float, default=30.0, help="t-SNE perplexity (capped below the point count)."
    )
    parser.add_argument("--seed", type=int, default=0, help="t-SNE random state.")
    args = parser.parse_args(argv)
    if not args.model.is_dir():
        parser.error(f"--model {args.model}: no such folder")
    if args.output.suffix.lower() != ".png":
        parser.error(f"--output {args.output}: give a .png file name")
    if args.perplexity <= 0:
        parser.error(f"--perplexity must be positive, got {args.perplexity}")
    return args


def split_molecules(model_dir: Path, part: str, data_file: str | None, task_names: list[str]):
    """SMILES and labels `[n, tasks]` of one part of the split the model was trained on."""
    split_file = model_dir / "split.json"
    dataset_name = json.loads(split_file.read_text()).get("dataset")
    if dataset_name is None and data_file is None:
        raise SystemExit(f"{split_file} names no bundled dataset: give the training CSV with --data_file")
    table = load_table(data_file=data_file, dataset_name=None if data_file else dataset_name, label_columns=task_names)
    rows = load_split_file(split_file, table)[part]
    return [table.smiles[i] for i in rows], table.labels[rows]


@torch.no_grad()
def prototype_space_points(model, processor, smiles: list[str], task: int) -> dict[str, np.ndarray]:
    """Normalised projected graph and text summaries `[n, hidden]` and the task's prototypes `[P, hidden]`."""
    embeddings, errors = embed_smiles(model, processor, smiles)
    if any(errors):
        raise SystemExit(f"molecules of the split failed to featurize: {[e for e in errors if e][:3]}")
    space = model.protomol.prototype_space
    graph = space.graph_projection(torch.from_numpy(embeddings["graph_embeds"]))
    text = space.text_projection(torch.from_numpy(embeddings["text_embeds"]))
    return {
        "graph": F.normalize(graph, dim=-1).numpy(),
        "text": F.normalize(text, dim=-1).numpy(),
        "prototype": F.normalize(space.prototypes[task], dim=-1).numpy(),
    }


def colour_of(value: float) -> str:
    if np.isnan(value):
        return MISSING_COLOUR
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    index = int(value)
    return CLASS_COLOURS[index] if index < len(CLASS_COLOURS) else cycle[index % len(cycle)]


def main(argv=None) -> pd.DataFrame:
    args = parse_args(argv)
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(args.model).eval()
    processor = ProtoMolProcessor.from_pretrained(args.model)
    task_names = list(model.config.task_names)
    if args.task is not None and args.task not in task_names:
        raise SystemExit(f"--task {args.task!r} is not a task of this model: {', '.join(task_names)}")
    task = task_names.index(args.task) if args.task is not None else 0
    smiles, labels = split_molecules(args.model, args.part, args.data_file, task_names)
    # Regression labels are shown by the prototype class they fall in (the model's own partition).
    classes = model.label_classes(torch.from_numpy(labels).float()).float().numpy()[:, task]
    classes[np.isnan(labels[:, task])] = np.nan
    points = prototype_space_points(model, processor, smiles, task)

    stacked = np.concatenate([points["graph"], points["text"], points["prototype"]])
    perplexity = min(args.perplexity, (len(stacked) - 1) / 3)
    coordinates = TSNE(2, perplexity=perplexity, init="pca", random_state=args.seed).fit_transform(stacked)
    prototype_classes = model.prototype_classes.float().numpy()
    table = pd.DataFrame(
        {
            "kind": ["graph"] * len(smiles) + ["text"] * len(smiles) + ["prototype"] * len(prototype_classes),
            "smiles": smiles * 2 + [""] * len(prototype_classes),
            "class": np.concatenate([classes, classes, prototype_classes]),
            "x": coordinates[:, 0],
            "y": coordinates[:, 1],
        }
    )

    figure, axes = plt.subplots(figsize=(7, 6))
    for kind, marker, size in (("graph", "o", 18), ("text", "^", 18), ("prototype", "*", 320)):
        rows = table[table["kind"] == kind]
        axes.scatter(
            rows["x"],
            rows["y"],
            c=[colour_of(value) for value in rows["class"]],
            marker=marker,
            s=size,
            alpha=1.0 if kind == "prototype" else 0.6,
            edgecolors="black" if kind == "prototype" else "none",
            label=f"{kind} ({len(rows)})",
        )
    axes.set_title(f"Prototype space, {task_names[task]}: {args.part} molecules and prototypes (t-SNE)")
    axes.legend(title="marker (count); colour = class", loc="best", fontsize=8)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=120)
    plt.close(figure)
    table.to_csv(args.output.with_suffix(".csv"), index=False)
    print(f"wrote {args.output} and {args.output.with_suffix('.csv')}")
    return table


if __name__ == "__main__":
    main()
