"""`protomol explain`: which atoms and words a prediction drew on and which prototypes a molecule is near."""

import argparse
import json
from pathlib import Path

from ..explanation import draw_atom_importance, explain_molecule, require_cross_attention
from ..featurization_protomol import parse_molecule
from ..loading import load_single_model
from ..prediction import INVALID_ROW_POLICIES
from .common import HelpFormatter, UsageError, add_device_options, positive_int, summary


def add_parser(subcommands) -> None:
    """Add `explain` to the subcommands."""
    explain = subcommands.add_parser(
        "explain",
        formatter_class=HelpFormatter,
        help="show which atoms and words a prediction drew on and which prototypes the molecule is near",
        description="Explain the predictions for a few molecules. For molecule i, --output_dir receives "
        "molecule_<i>.json (predictions; each atom's importance, the attention it receives from the description's "
        "tokens averaged over heads, tokens and fusion layers, summing to 1; the most attended tokens; per task the "
        "nearest prototypes of each modality with their class and cosine similarity) and molecule_<i>.png (the "
        "molecule with atoms shaded white to red from least to most important, atom indices shown). "
        "explanations.json lists every molecule with its files or the reason it was skipped.",
    )
    explain.add_argument(
        "--model", required=True, help="Folder of a trained model (the --output_dir of `protomol train`)."
    )
    explain.add_argument("--smiles", required=True, nargs="+", help="One or more SMILES to explain.")
    explain.add_argument(
        "--text",
        nargs="+",
        default=None,
        help="A description per SMILES, in the same order; without it, each molecule gets the kind of "
        "description the model was trained with.",
    )
    explain.add_argument("--output_dir", required=True, help="Folder for the JSON and PNG files.")
    explain.add_argument(
        "--top_prototypes", type=positive_int, default=3, help="Nearest prototypes listed per task and modality."
    )
    explain.add_argument("--top_tokens", type=positive_int, default=10, help="Most attended tokens listed.")
    explain.add_argument(
        "--invalid",
        choices=INVALID_ROW_POLICIES,
        default="skip",
        help="What to do with a SMILES that cannot be used: skip it (explanations.json gives the reason) or stop "
        "with exit code 2, naming its 0-based position among --smiles.",
    )
    add_device_options(explain)
    explain.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> None:
    """`protomol explain`: a JSON and a PNG per molecule, and explanations.json listing them."""
    if args.text is not None and len(args.text) != len(args.smiles):
        raise UsageError(f"got {len(args.text)} --text values for {len(args.smiles)} --smiles")
    model, processor = load_single_model(args.model, args.device, args.dtype)
    require_cross_attention(model.config)
    if args.text is None and processor.text_source == "given":
        raise UsageError("this model was trained with texts from a data column: give one --text per --smiles")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    index = []
    for position, smiles in enumerate(args.smiles):
        text = args.text[position] if args.text is not None else None
        entry: dict[str, object] = {"index": position, "smiles": smiles}
        try:
            # Parsed once here: the explanation and the drawing both use this molecule.
            molecule = parse_molecule(smiles, max_heavy_atoms=processor.max_heavy_atoms)
            explanation = explain_molecule(
                model,
                processor,
                smiles,
                text,
                top_prototypes=args.top_prototypes,
                top_tokens=args.top_tokens,
                molecule=molecule,
            )
        except ValueError as error:  # an invalid SMILES or empty text (ProtoMolFeaturizationError is one)
            reason = getattr(error, "reason", None) or str(error)
            if args.invalid == "error":
                raise UsageError(f"--smiles {position} ({smiles!r}): {reason}") from None
            index.append({**entry, "error": reason})
            continue
        json_path, png_path = output_dir / f"molecule_{position}.json", output_dir / f"molecule_{position}.png"
        json_path.write_text(json.dumps(explanation, indent=2))
        legend = ", ".join(f"{task} {value:.3g}" for task, value in explanation["predictions"].items())
        draw_atom_importance(molecule, [atom["importance"] for atom in explanation["atoms"]], png_path, legend=legend)
        index.append({**entry, "json": json_path.name, "png": png_path.name, "error": None})
    (output_dir / "explanations.json").write_text(json.dumps(index, indent=2))
    print(summary("explained", [entry["error"] for entry in index], f"see {output_dir / 'explanations.json'}"))
