"""Explain one prediction: atom importance from the cross-attention, nearest prototypes, an annotated drawing.

Atom importance is the attention each atom receives from the description's tokens (tokens -> atoms
cross-attention, averaged over heads, real tokens and fusion layers), so it sums to 1 over the atoms.
Token importance is the reverse direction (atoms -> tokens), averaged over atoms and layers. Attention
shows where information flowed between the two modalities; it is a view into the model, not a
causal attribution.

    explanation = explain_molecule(model, processor, "CC(=O)Oc1ccccc1C(=O)O")
    importance = [atom["importance"] for atom in explanation["atoms"]]
    draw_atom_importance(explanation["smiles"], importance, "aspirin.png")
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import Chem

from .featurization_protomol import as_molecule, parse_molecule
from .processing_protomol import ProtoMolProcessor

# Highlight colour of the most important atom; the others fade linearly towards white.
MOST_IMPORTANT_RGB = np.array([0.84, 0.15, 0.16])
WHITE_RGB = np.ones(3)


def _prototype_class_name(config, prototype_class: int) -> str:
    """A readable name of the class a prototype anchors ("negative"/"positive", or a regression bin)."""
    if config.problem_type == "classification":
        return ("negative", "positive")[prototype_class]
    return f"bin {prototype_class + 1} of {config.num_classes}"


def require_cross_attention(config) -> None:
    """Raise ValueError for a model without atom-token cross-attention, which leaves nothing to explain."""
    if config.cross_attention == "none":
        raise ValueError(
            "this model was trained with cross_attention='none': it has no atom-token attention to explain"
        )


@torch.no_grad()
def explain_molecule(
    model,
    processor,
    smiles: str,
    text: str | None = None,
    top_prototypes: int = 3,
    top_tokens: int = 10,
    molecule: Chem.Mol | None = None,
) -> dict[str, Any]:
    """Predictions, per-atom and per-token importance and the nearest prototypes for one molecule.

    Returns a JSON-ready dict: `smiles`, `text`, `predictions` `{task: value}`, `atoms` (index, element,
    importance, in RDKit's atom order), `tokens` (the `top_tokens` most attended tokens with their
    weights) and, per task, the `top_prototypes` nearest prototypes of each modality with their class and
    cosine similarity. `molecule` is the parsed `smiles` when the caller has it already (`parse_molecule`);
    otherwise it is parsed here, once. Raises ProtoMolFeaturizationError for an invalid SMILES and ValueError
    for a model without cross-attention.
    """
    config = model.config
    require_cross_attention(config)
    if molecule is None:
        molecule = parse_molecule(smiles, max_heavy_atoms=processor.max_heavy_atoms)
    # The description is built once and passed on, so the processor does not build it again.
    description = processor.texts_for([molecule], text)[0]
    features = processor.featurize_molecules([molecule], [smiles], description)[0]
    batch = processor.collator([features])
    model.eval()
    outputs = model(**{name: tensor.to(model.device) for name, tensor in batch.items()}, output_attentions=True)

    num_atoms = len(features["atom_features"])
    token_mask = batch["attention_mask"][0].bool()
    # Per layer: atoms->tokens [1, max_atoms, seq_len], tokens->atoms [1, seq_len, max_atoms].
    atoms_to_tokens = torch.stack([pair[0][0] for pair in outputs.cross_attentions]).float().cpu()
    tokens_to_atoms = torch.stack([pair[1][0] for pair in outputs.cross_attentions]).float().cpu()
    atom_importance = tokens_to_atoms[:, token_mask, :num_atoms].mean(dim=(0, 1))
    token_importance = atoms_to_tokens[:, :num_atoms][:, :, token_mask].mean(dim=(0, 1))

    values = ProtoMolProcessor.post_process(outputs.logits[0].float(), config.problem_type)
    token_ids = batch["input_ids"][0][token_mask].tolist()
    token_texts = processor.tokenizer.convert_ids_to_tokens(token_ids)
    order = token_importance.argsort(descending=True)[:top_tokens].tolist()

    prototype_classes = model.prototype_classes.tolist()
    prototypes: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for task, name in enumerate(config.task_names):
        prototypes[name] = {}
        for modality in ("graph", "text"):
            similarities = getattr(outputs, f"{modality}_prototype_similarities")[0, task].float().cpu()
            nearest = similarities.argsort(descending=True)[:top_prototypes].tolist()
            prototypes[name][modality] = [
                {
                    "prototype": index,
                    "class": _prototype_class_name(config, prototype_classes[index]),
                    "similarity": round(float(similarities[index]), 4),
                }
                for index in nearest
            ]
    return {
        "smiles": smiles,
        "text": description,
        "predictions": dict(zip(config.task_names, values.tolist(), strict=True)),
        "atoms": [
            {"index": atom.GetIdx(), "element": atom.GetSymbol(), "importance": float(atom_importance[atom.GetIdx()])}
            for atom in molecule.GetAtoms()
        ],
        "tokens": [{"token": token_texts[i], "importance": round(float(token_importance[i]), 5)} for i in order],
        "nearest_prototypes": prototypes,
    }


def draw_atom_importance(
    molecule: str | Chem.Mol,
    atom_importance,
    path: str | Path,
    size: tuple[int, int] = (600, 450),
    legend: str = "",
) -> None:
    """Write a PNG of the molecule (a SMILES or a parsed molecule) with atoms shaded from white (least
    important) to red (most important)."""
    mol = as_molecule(molecule)
    importance = np.asarray(atom_importance, dtype=np.float64)
    if importance.shape != (mol.GetNumAtoms(),):
        raise ValueError(f"got {importance.shape[0]} importances for {mol.GetNumAtoms()} atoms")
    # Attention over atoms is often close to uniform: stretch the observed range so differences show.
    spread = importance.max() - importance.min()
    scaled = (importance - importance.min()) / spread if spread > 0 else np.zeros_like(importance)
    colours = {i: tuple(WHITE_RGB + (MOST_IMPORTANT_RGB - WHITE_RGB) * value) for i, value in enumerate(scaled)}
    radii = {i: 0.25 + 0.2 * value for i, value in enumerate(scaled)}
    # Imported here: RDKit's drawing needs X11 client libraries (libXrender) that headless GPU servers often
    # lack, and predicting must not depend on them.
    from rdkit.Chem.Draw import rdMolDraw2D

    drawer = rdMolDraw2D.MolDraw2DCairo(*size)
    options = drawer.drawOptions()
    options.addAtomIndices = True  # type: ignore[assignment]  # RDKit's stub types this option wrongly
    rdMolDraw2D.PrepareAndDrawMolecule(
        drawer,
        mol,
        legend=legend,
        highlightAtoms=list(colours),
        highlightAtomColors=colours,
        highlightAtomRadii=radii,
        highlightBonds=[],
    )
    drawer.FinishDrawing()
    Path(path).write_bytes(drawer.GetDrawingText())


__all__ = ["draw_atom_importance", "explain_molecule", "require_cross_attention"]
