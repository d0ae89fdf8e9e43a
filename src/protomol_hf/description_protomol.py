"""Parsed molecule -> deterministic English description (the "template" text source) and canonical SMILES.

The processor and training build a molecule's description from the same RDKit molecule its graph comes
from (featurization_protomol.py), so a SMILES is parsed once. This file is copied into Hub checkpoints as
remote code: it imports only its siblings, the standard library and RDKit.
"""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import Descriptors, rdMolDescriptors

from .featurization_protomol import as_molecule

# Functional groups reported by describe_molecule, in reporting order.
# Amine patterns require carbon-only neighbours and exclude N next to C=O/C=S/C=N
# so that amides, ureas, amidines and sulfonamides are not also called amines.
FUNCTIONAL_GROUP_SMARTS: tuple[tuple[str, str], ...] = (
    ("carboxylic acid", "[CX3](=O)[OX2H1]"),
    ("carboxylate", "[CX3](=O)[OX1-]"),
    ("ester", "[#6][CX3](=O)[OX2H0][#6]"),
    ("lactone", "[#6][CX3;R](=O)[OX2;R][#6]"),
    ("amide", "[NX3][CX3](=[OX1])[#6]"),
    ("lactam", "[NX3;R][CX3;R](=[OX1])[#6]"),
    ("urea", "[NX3][CX3](=[OX1])[NX3]"),
    ("carbamate", "[NX3][CX3](=[OX1])[OX2][#6]"),
    ("guanidine", "[NX3][CX3](=[NX2,NX3+])[NX3]"),
    ("primary amine", "[NX3;H2;!$(N[!#6]);!$(NC=[O,S,N])][#6]"),
    ("secondary amine", "[NX3;H1;!$(N[!#6]);!$(NC=[O,S,N])]([#6])[#6]"),
    ("tertiary amine", "[NX3;H0;!$(N[!#6]);!$(NC=[O,S,N])]([#6])([#6])[#6]"),
    ("quaternary ammonium", "[NX4+;H0]([#6])([#6])([#6])[#6]"),
    ("alcohol", "[OX2H][CX4]"),
    ("phenol", "[OX2H]c"),
    ("ether", "[OX2;!$(O[#6]=[O,S,N])]([#6])[#6]"),
    ("epoxide", "[OX2r3]1[#6r3][#6r3]1"),
    ("aldehyde", "[CX3H1](=O)[#6]"),
    ("ketone", "[#6][CX3](=O)[#6]"),
    ("imine", "[CX3;!$(C[N,O,S])]=[NX2;!$(N[O,N])]"),
    ("oxime", "[CX3]=[NX2][OX2H]"),
    ("azo", "[#6][NX2]=[NX2][#6]"),
    ("nitrile", "[NX1]#[CX2]"),
    ("nitro", "[$([NX3](=O)=O),$([NX3+](=O)[O-])][#6]"),
    ("sulfonamide", "[SX4](=[OX1])(=[OX1])[NX3]"),
    ("sulfonic acid", "[SX4](=[OX1])(=[OX1])[OX2H1]"),
    ("sulfone", "[#6][SX4](=[OX1])(=[OX1])[#6]"),
    ("thiol", "[SX2H1][#6]"),
    ("thioether", "[#6][SX2H0][#6]"),
    ("phosphate", "[PX4](=[OX1])([OX2,OX1-])([OX2,OX1-])[OX2,OX1-]"),
    ("fluoro group", "[#6]F"),
    ("chloro group", "[#6]Cl"),
    ("bromo group", "[#6]Br"),
    ("iodo group", "[#6]I"),
    ("alkene", "[CX3]=[CX3]"),
    ("alkyne", "[CX2]#[CX2]"),
    ("benzene ring", "c1ccccc1"),
    ("aromatic nitrogen heterocycle", "[n]"),
    ("aromatic oxygen heterocycle", "[o]"),
    ("aromatic sulfur heterocycle", "[s]"),
)


def _compile_functional_groups() -> tuple[tuple[str, Chem.Mol], ...]:
    compiled = []
    for name, smarts in FUNCTIONAL_GROUP_SMARTS:
        pattern = Chem.MolFromSmarts(smarts)
        if pattern is None:
            raise RuntimeError(f"invalid SMARTS for functional group {name!r}: {smarts}")
        compiled.append((name, pattern))
    return tuple(compiled)


_FUNCTIONAL_GROUP_PATTERNS = _compile_functional_groups()


def _count(number: int, noun: str) -> str:
    """'1 ring', '2 rings': every noun used here takes a plain -s plural."""
    return f"{number} {noun if number == 1 else noun + 's'}"


def _signed(number: int) -> str:
    return f"+{number}" if number > 0 else str(number)


def find_functional_groups(mol: Chem.Mol) -> list[str]:
    """Names of the FUNCTIONAL_GROUP_SMARTS groups present in ``mol``, in table order."""
    return [name for name, pattern in _FUNCTIONAL_GROUP_PATTERNS if mol.HasSubstructMatch(pattern)]


def canonical_smiles(molecule: str | Chem.Mol) -> str:
    """RDKit's canonical isomeric SMILES of a SMILES string or a parsed molecule: one string per molecule,
    however the input was written.

    Raises ProtoMolFeaturizationError for a string that cannot be parsed.
    """
    return Chem.MolToSmiles(as_molecule(molecule))


def describe_molecule(molecule: str | Chem.Mol) -> str:
    """Deterministic English description of a molecule (a SMILES string or a parsed molecule) built from
    RDKit descriptors.

    The same molecule always gives the same text. Raises ProtoMolFeaturizationError
    for a string that cannot be parsed.
    """
    mol = as_molecule(molecule)
    formula = rdMolDescriptors.CalcMolFormula(mol)
    # RDKit defines MolWt at import time (a lambda), so its bundled stub omits it.
    molecular_weight = Descriptors.MolWt(mol)  # type: ignore[attr-defined]
    log_p = rdMolDescriptors.CalcCrippenDescriptors(mol)[0]
    tpsa = rdMolDescriptors.CalcTPSA(mol)
    donors = rdMolDescriptors.CalcNumHBD(mol)
    acceptors = rdMolDescriptors.CalcNumHBA(mol)
    rotatable = rdMolDescriptors.CalcNumRotatableBonds(mol)
    rings = rdMolDescriptors.CalcNumRings(mol)
    aromatic_rings = rdMolDescriptors.CalcNumAromaticRings(mol)

    sentences = [
        f"{formula}: a molecule with molecular weight {molecular_weight:.2f}, "
        f"logP {log_p:.2f}, TPSA {tpsa:.2f}, "
        f"{_count(donors, 'H-bond donor')} and {_count(acceptors, 'H-bond acceptor')}, "
        f"{_count(rotatable, 'rotatable bond')}, "
        + (f"{_count(rings, 'ring')} ({aromatic_rings} aromatic)." if rings else "no rings.")
    ]

    num_fragments = len(Chem.GetMolFrags(mol))
    if num_fragments > 1:
        sentences.append(f"It consists of {num_fragments} disconnected fragments.")

    groups = find_functional_groups(mol)
    if groups:
        sentences.append(f"Functional groups: {', '.join(groups)}.")
    else:
        sentences.append("No listed functional groups.")

    charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    charged_atoms = sum(1 for charge in charges if charge != 0)
    if charged_atoms:
        sentences.append(f"Net formal charge {_signed(sum(charges))} with {_count(charged_atoms, 'charged atom')}.")
    else:
        sentences.append("No formal charge.")

    centres = Chem.FindMolChiralCenters(mol, includeUnassigned=True)
    if centres:
        # FindMolChiralCenters labels centres without a given configuration "?".
        unspecified = sum(1 for _, label in centres if label == "?")
        sentences.append(
            f"{_count(len(centres), 'stereocentre')} "
            f"({len(centres) - unspecified} specified, {unspecified} unspecified)."
        )
    else:
        sentences.append("No stereocentres.")
    return " ".join(sentences)
