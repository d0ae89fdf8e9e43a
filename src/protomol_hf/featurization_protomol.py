"""SMILES -> RDKit molecule -> molecular graph for ProtoMol (the description is built from the same molecule,
in description_protomol.py).

This file is copied verbatim into Hub checkpoints as remote code, so it imports
only the standard library, numpy and RDKit.

Atom and bond features are OGB-style categorical indices. Every vocabulary ends
with an explicit "other" index that absorbs values outside the listed ones, so a
rare element or an odd charge never crashes featurization; it maps to a known
embedding row instead.
"""

from __future__ import annotations

import math
import multiprocessing
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain

import numpy as np
from rdkit import Chem, rdBase

DEFAULT_MAX_HEAVY_ATOMS = 500
# Bounds checked on a SMILES's text before RDKit parses it (the size limit is `max_heavy_atoms`). 20 characters
# per atom leave room for bracket atoms with isotope, charge and stereo ("[13C@@H+]") and for ring closures.
MAX_SMILES_CHARACTERS_PER_ATOM = 20
MAX_HYDROGEN_ATOMS_PER_HEAVY_ATOM = 4
# The atoms of a SMILES: bracket atoms, two-letter organic-subset elements, one-letter ones and dummy atoms.
_ATOM_TOKEN = re.compile(r"\[[^\]]*\]|Br|Cl|[BCNOPSFIbcnops*]")
_HYDROGEN_ATOM = re.compile(r"\[\d*H[+-]?\d*\]")

_BondType = Chem.BondType
_BondStereo = Chem.BondStereo
_ChiralType = Chem.ChiralType
_Hybridization = Chem.HybridizationType

# Value -> index for every categorical feature. The "other" index of a feature
# is len(vocab), i.e. the slot right after the listed values.
ATOMIC_NUM_VOCAB = {atomic_num: atomic_num - 1 for atomic_num in range(1, 119)}
CHIRALITY_VOCAB = {
    _ChiralType.CHI_UNSPECIFIED: 0,
    _ChiralType.CHI_TETRAHEDRAL_CW: 1,
    _ChiralType.CHI_TETRAHEDRAL_CCW: 2,
    _ChiralType.CHI_OTHER: 3,
}
DEGREE_VOCAB = {degree: degree for degree in range(0, 11)}
FORMAL_CHARGE_VOCAB = {charge: charge + 5 for charge in range(-5, 6)}
NUM_HS_VOCAB = {num_hs: num_hs for num_hs in range(0, 9)}
NUM_RADICAL_ELECTRONS_VOCAB = {radicals: radicals for radicals in range(0, 5)}
HYBRIDIZATION_VOCAB = {
    _Hybridization.S: 0,
    _Hybridization.SP: 1,
    _Hybridization.SP2: 2,
    _Hybridization.SP3: 3,
    _Hybridization.SP3D: 4,
    _Hybridization.SP3D2: 5,
}
# Booleans get an "other" slot too, so every feature has the same layout; it is never produced.
BOOLEAN_VOCAB = {False: 0, True: 1}

BOND_TYPE_VOCAB = {
    _BondType.SINGLE: 0,
    _BondType.DOUBLE: 1,
    _BondType.TRIPLE: 2,
    _BondType.AROMATIC: 3,
}
BOND_STEREO_VOCAB = {
    _BondStereo.STEREONONE: 0,
    _BondStereo.STEREOZ: 1,
    _BondStereo.STEREOE: 2,
    _BondStereo.STEREOCIS: 3,
    _BondStereo.STEREOTRANS: 4,
    _BondStereo.STEREOANY: 5,
}

_ATOM_VOCABS = (
    ("atomic_num", ATOMIC_NUM_VOCAB),
    ("chirality", CHIRALITY_VOCAB),
    ("degree", DEGREE_VOCAB),
    ("formal_charge", FORMAL_CHARGE_VOCAB),
    ("num_hs", NUM_HS_VOCAB),
    ("num_radical_electrons", NUM_RADICAL_ELECTRONS_VOCAB),
    ("hybridization", HYBRIDIZATION_VOCAB),
    ("is_aromatic", BOOLEAN_VOCAB),
    ("is_in_ring", BOOLEAN_VOCAB),
)
_BOND_VOCABS = (
    ("bond_type", BOND_TYPE_VOCAB),
    ("stereo", BOND_STEREO_VOCAB),
    ("is_conjugated", BOOLEAN_VOCAB),
)

ATOM_FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in _ATOM_VOCABS)
BOND_FEATURE_NAMES: tuple[str, ...] = tuple(name for name, _ in _BOND_VOCABS)
# +1 for the trailing "other" index.
ATOM_FEATURE_VOCAB_SIZES: tuple[int, ...] = tuple(len(vocab) + 1 for _, vocab in _ATOM_VOCABS)
BOND_FEATURE_VOCAB_SIZES: tuple[int, ...] = tuple(len(vocab) + 1 for _, vocab in _BOND_VOCABS)
_CHIRALITY_COLUMN = ATOM_FEATURE_NAMES.index("chirality")
_STEREO_COLUMN = BOND_FEATURE_NAMES.index("stereo")

# Long inputs are shortened in messages so an error about a 600-atom molecule stays readable.
_MAX_SMILES_IN_MESSAGE = 80


def _shorten_for_message(smiles: object) -> str:
    text = repr(smiles)
    if len(text) > _MAX_SMILES_IN_MESSAGE:
        text = text[: _MAX_SMILES_IN_MESSAGE - 3] + "..."
    return text


class ProtoMolFeaturizationError(ValueError):
    """Input that cannot be featurized.

    Attributes: ``smiles`` (the offending input, as given), ``reason`` (why it
    failed) and ``row`` (its position in a batch, or None for a single call).
    """

    def __init__(self, smiles: object, reason: str, row: int | None = None):
        self.smiles = smiles
        self.reason = reason
        self.row = row
        message = f"cannot featurize SMILES {_shorten_for_message(smiles)}: {reason}"
        if row is not None:
            message = f"row {row}: {message}"
        super().__init__(message)

    def __reduce__(self):
        # The default reduce would call __init__ with the formatted message only,
        # which breaks unpickling in worker processes.
        return (type(self), (self.smiles, self.reason, self.row))


@dataclass(frozen=True)
class FeaturizationFailure:
    """One row of a batch that could not be featurized."""

    row: int
    smiles: object
    reason: str


def _may_have_chiral_tags(smiles: str) -> bool:
    """RDKit sets chiral tags only from '@' marks or from CXSMILES extensions ('|...|')."""
    return "@" in smiles or "|" in smiles


def _may_have_bond_stereo(smiles: str) -> bool:
    """RDKit sets bond stereo only from '/' and '\\' marks or from CXSMILES extensions."""
    return "/" in smiles or "\\" in smiles or "|" in smiles


def not_a_string_problem(smiles: object) -> str | None:
    """Why `smiles` is no SMILES string at all (a missing value, a number, ...), or None for a string."""
    if smiles is None:
        return "input is None (missing value)"
    if isinstance(smiles, str):
        return None
    if isinstance(smiles, float) and math.isnan(smiles):
        return "input is NaN (missing value)"
    return f"expected a SMILES string, got {type(smiles).__name__}"


def _parse_smiles(smiles: object, max_heavy_atoms: int | None = None) -> Chem.Mol:
    """Parse with RDKit's logging silenced; raise ProtoMolFeaturizationError with our own reason. With
    `max_heavy_atoms`, a SMILES that is too large is refused from its text, before RDKit spends memory on it."""
    problem = not_a_string_problem(smiles)
    if problem is not None:
        raise ProtoMolFeaturizationError(smiles, problem)
    assert isinstance(smiles, str)  # not_a_string_problem names everything else
    text = smiles.strip()
    if not text:
        raise ProtoMolFeaturizationError(smiles, "empty SMILES string")
    _check_characters(smiles, text)
    if max_heavy_atoms is not None:
        _check_size(smiles, text, max_heavy_atoms)
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            raise ProtoMolFeaturizationError(smiles, _diagnose_parse_failure(text))
    return mol


def _check_characters(smiles: str, text: str) -> None:
    """RDKit reads a SMILES up to the first whitespace (it takes the rest for a name) and stops at some control
    characters, so `CC O` would be scored as ethane: refuse any character a SMILES cannot hold. Whitespace is
    allowed only before a CXSMILES extension (`CC |...|`)."""
    body, _, extension = text.partition(" ")
    if extension and not (extension.startswith("|") and extension.endswith("|")):
        raise ProtoMolFeaturizationError(
            smiles, "contains whitespace: a SMILES is one word (only a CXSMILES extension ' |...|' may follow)"
        )
    position = next(
        (i for i, char in enumerate(body) if not (char.isascii() and char.isprintable() and char != " ")), None
    )
    if position is not None:
        raise ProtoMolFeaturizationError(
            smiles, f"character {body[position]!r} at position {position} cannot be part of a SMILES"
        )


def _check_size(smiles: str, text: str, max_heavy_atoms: int) -> None:
    """Count the atoms in the text (RDKit's sanitization grows faster than linearly with a molecule's size: a
    15 kB SMILES of one ring took 6.9 GB) and refuse a molecule over the limit before parsing it. Dummy atoms
    (`*`) count as heavy; hydrogens written as atoms are bounded too."""
    if len(text) > MAX_SMILES_CHARACTERS_PER_ATOM * max_heavy_atoms:
        raise ProtoMolFeaturizationError(
            smiles,
            f"{len(text)} characters: more than a SMILES of {max_heavy_atoms} heavy atoms needs "
            f"({MAX_SMILES_CHARACTERS_PER_ATOM} per atom)",
        )
    atoms = _ATOM_TOKEN.findall(text)
    hydrogens = sum(1 for atom in atoms if _HYDROGEN_ATOM.fullmatch(atom))
    if len(atoms) - hydrogens > max_heavy_atoms:
        raise ProtoMolFeaturizationError(
            smiles, f"{len(atoms) - hydrogens} heavy atoms exceed the limit of {max_heavy_atoms}"
        )
    if hydrogens > MAX_HYDROGEN_ATOMS_PER_HEAVY_ATOM * max_heavy_atoms:
        raise ProtoMolFeaturizationError(
            smiles,
            f"{hydrogens} hydrogens written as atoms exceed the limit of {MAX_HYDROGEN_ATOMS_PER_HEAVY_ATOM * max_heavy_atoms}",
        )


def _diagnose_parse_failure(text: str) -> str:
    """Tell a syntax error apart from a chemically invalid molecule (only runs on failures)."""
    unsanitized = Chem.MolFromSmiles(text, sanitize=False)
    if unsanitized is None:
        return "RDKit could not parse it"
    try:
        Chem.SanitizeMol(unsanitized)
    except Exception as err:  # RDKit raises several unrelated exception types here.
        return f"RDKit rejected the molecule: {err}"
    return "RDKit rejected the molecule"


def _int64_matrix(rows: list[tuple], width: int) -> np.ndarray:
    """[len(rows), width] int64; fromiter over the flattened rows is cheaper than np.array on tuples."""
    return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width).reshape(len(rows), width)


def _vocab_indices(items, read_value, vocab: dict) -> list[int]:
    """Index of `read_value(item)` in `vocab` for each item, the "other" index for unknown values."""
    other = len(vocab)
    return [vocab.get(read_value(item), other) for item in items]


def parse_molecule(smiles: object, max_heavy_atoms: int | None = DEFAULT_MAX_HEAVY_ATOMS) -> Chem.Mol:
    """The RDKit molecule of one SMILES, the one parse that its graph and its description are built from.

    Raises ProtoMolFeaturizationError for unusable input (anything but a valid SMILES string, e.g. None
    or NaN) or more than ``max_heavy_atoms`` heavy atoms (None: no limit).
    """
    mol = _parse_smiles(smiles, max_heavy_atoms)
    num_heavy_atoms = mol.GetNumHeavyAtoms()
    if max_heavy_atoms is not None and num_heavy_atoms > max_heavy_atoms:
        raise ProtoMolFeaturizationError(smiles, f"{num_heavy_atoms} heavy atoms exceed the limit of {max_heavy_atoms}")
    return mol


def as_molecule(molecule: object) -> Chem.Mol:
    """A parsed molecule as given, or the parse of a SMILES (without a size limit); ProtoMolFeaturizationError
    when it cannot be parsed. For the functions that take either."""
    return molecule if isinstance(molecule, Chem.Mol) else parse_molecule(molecule, max_heavy_atoms=None)


def smiles_to_graph(smiles: object, max_heavy_atoms: int = DEFAULT_MAX_HEAVY_ATOMS) -> dict[str, np.ndarray]:
    """Featurize one SMILES as a graph of categorical indices: `mol_to_graph` of `parse_molecule`.

    Raises ProtoMolFeaturizationError for unusable input or more than ``max_heavy_atoms`` heavy atoms.
    """
    return mol_to_graph(parse_molecule(smiles, max_heavy_atoms), smiles)


def mol_to_graph(mol: Chem.Mol, smiles: object = None) -> dict[str, np.ndarray]:
    """The graph of a parsed molecule as categorical indices.

    Returns ``{"atom_features": int64 [num_atoms, len(ATOM_FEATURE_NAMES)], "edge_index": int64
    [2, num_edges], "bond_features": int64 [num_edges, len(BOND_FEATURE_NAMES)]}``. Every bond appears in
    both directions: edge 2k is u->v and edge 2k+1 is v->u, both with the bond's features. Disconnected
    fragments (salts, mixtures) stay in one graph. ``smiles``, the string ``mol`` was parsed from, lets
    molecules whose SMILES has no stereo marks skip reading stereo (a Mol alone is read in full).
    """
    # A SMILES without stereo marks cannot carry chiral tags or bond stereo; any other input may.
    stereo_text = smiles if isinstance(smiles, str) else "@/|"
    num_atoms = mol.GetNumAtoms()
    num_bonds = mol.GetNumBonds()
    get_atom = mol.GetAtomWithIdx
    get_bond = mol.GetBondWithIdx

    # Enum-returning RDKit getters cost several times more than integer ones, so
    # chirality and bond stereo start at their "none" index and are only read
    # when the SMILES text can carry them. Getters are taken unbound from the
    # class: calling them directly skips a bound-method object per call.
    atomic_num_of = Chem.Atom.GetAtomicNum
    total_degree_of = Chem.Atom.GetTotalDegree
    formal_charge_of = Chem.Atom.GetFormalCharge
    total_hs_of = Chem.Atom.GetTotalNumHs
    radicals_of = Chem.Atom.GetNumRadicalElectrons
    hybridization_of = Chem.Atom.GetHybridization
    is_aromatic = Chem.Atom.GetIsAromatic
    is_in_ring = Chem.Atom.IsInRing
    atomic_num_index = ATOMIC_NUM_VOCAB.get
    degree_index = DEGREE_VOCAB.get
    charge_index = FORMAL_CHARGE_VOCAB.get
    num_hs_index = NUM_HS_VOCAB.get
    radicals_index = NUM_RADICAL_ELECTRONS_VOCAB.get
    hybridization_index = HYBRIDIZATION_VOCAB.get
    other_atomic_num = len(ATOMIC_NUM_VOCAB)
    other_degree = len(DEGREE_VOCAB)
    other_charge = len(FORMAL_CHARGE_VOCAB)
    other_num_hs = len(NUM_HS_VOCAB)
    other_radicals = len(NUM_RADICAL_ELECTRONS_VOCAB)
    other_hybridization = len(HYBRIDIZATION_VOCAB)
    no_chirality = CHIRALITY_VOCAB[_ChiralType.CHI_UNSPECIFIED]
    atom_rows = [
        (
            atomic_num_index(atomic_num_of(atom), other_atomic_num),
            no_chirality,
            degree_index(total_degree_of(atom), other_degree),
            charge_index(formal_charge_of(atom), other_charge),
            num_hs_index(total_hs_of(atom), other_num_hs),
            radicals_index(radicals_of(atom), other_radicals),
            hybridization_index(hybridization_of(atom), other_hybridization),
            is_aromatic(atom),  # bools become 0/1 in the int64 array, as in BOOLEAN_VOCAB
            is_in_ring(atom),
        )
        for atom in map(get_atom, range(num_atoms))
    ]
    atom_features = _int64_matrix(atom_rows, len(ATOM_FEATURE_NAMES))
    if _may_have_chiral_tags(stereo_text):
        atom_features[:, _CHIRALITY_COLUMN] = _vocab_indices(
            map(get_atom, range(num_atoms)), Chem.Atom.GetChiralTag, CHIRALITY_VOCAB
        )

    begin_of = Chem.Bond.GetBeginAtomIdx
    end_of = Chem.Bond.GetEndAtomIdx
    bond_type_of = Chem.Bond.GetBondType
    is_conjugated = Chem.Bond.GetIsConjugated
    bond_type_index = BOND_TYPE_VOCAB.get
    other_bond_type = len(BOND_TYPE_VOCAB)
    no_stereo = BOND_STEREO_VOCAB[_BondStereo.STEREONONE]
    # One row per bond: begin atom, end atom, then the bond features in
    # BOND_FEATURE_NAMES order.
    bond_rows = [
        (
            begin_of(bond),
            end_of(bond),
            bond_type_index(bond_type_of(bond), other_bond_type),
            no_stereo,
            is_conjugated(bond),
        )
        for bond in map(get_bond, range(num_bonds))
    ]
    bonds = _int64_matrix(bond_rows, 2 + len(BOND_FEATURE_NAMES))
    endpoints = bonds[:, :2]
    bond_features = bonds[:, 2:]
    if _may_have_bond_stereo(stereo_text):
        bond_features[:, _STEREO_COLUMN] = _vocab_indices(
            map(get_bond, range(num_bonds)), Chem.Bond.GetStereo, BOND_STEREO_VOCAB
        )

    # Bond k becomes edges 2k (begin->end) and 2k+1 (end->begin).
    edge_index = np.concatenate((endpoints, endpoints[:, ::-1]), axis=1).reshape(-1, 2).T
    return {
        "atom_features": atom_features,
        "edge_index": np.ascontiguousarray(edge_index),
        "bond_features": np.repeat(bond_features, 2, axis=0),
    }


def _graph_or_reason(smiles: object, max_heavy_atoms: int) -> tuple[dict | None, str | None]:
    """Worker-safe `smiles_to_graph`: returns (graph, None) or (None, reason) instead of raising."""
    try:
        return smiles_to_graph(smiles, max_heavy_atoms), None
    except ProtoMolFeaturizationError as err:
        return None, err.reason


def _molecule_or_reason(smiles: object, max_heavy_atoms: int) -> tuple[Chem.Mol | None, str | None]:
    """Worker-safe `parse_molecule`: returns (molecule, None) or (None, reason) instead of raising."""
    try:
        return parse_molecule(smiles, max_heavy_atoms), None
    except ProtoMolFeaturizationError as err:
        return None, err.reason


def _map_rows(convert, smiles_list: Sequence[object], max_heavy_atoms: int, num_workers: int):
    """`convert(smiles, max_heavy_atoms)` over the rows, in `num_workers` processes; returns (results, failures)."""
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive integer, got {num_workers!r}")
    smiles_list = list(smiles_list)
    convert_row = partial(convert, max_heavy_atoms=max_heavy_atoms)
    num_workers = min(num_workers, len(smiles_list))
    if num_workers <= 1:
        results = [convert_row(smiles) for smiles in smiles_list]
    else:
        # A few chunks per worker balance uneven molecule sizes while keeping
        # inter-process overhead per molecule small.
        chunksize = max(1, min(1024, len(smiles_list) // (num_workers * 8)))
        with multiprocessing.Pool(num_workers) as pool:
            results = pool.map(convert_row, smiles_list, chunksize=chunksize)
    converted = [result for result, _ in results]
    failures = [
        FeaturizationFailure(row=row, smiles=smiles_list[row], reason=reason)
        for row, (_, reason) in enumerate(results)
        if reason is not None
    ]
    return converted, failures


def featurize_many(
    smiles_list: Sequence[object],
    max_heavy_atoms: int = DEFAULT_MAX_HEAVY_ATOMS,
    num_workers: int = 1,
) -> tuple[list[dict | None], list[FeaturizationFailure]]:
    """Featurize a sequence of SMILES without stopping at bad rows.

    Returns ``(graphs, failures)``: ``graphs`` is aligned with the input and holds
    None where a row failed; ``failures`` lists those rows with their reasons.
    ``num_workers > 1`` spreads chunks over a process pool; order is preserved.
    """
    return _map_rows(_graph_or_reason, smiles_list, max_heavy_atoms, num_workers)


def parse_many(
    smiles_list: Sequence[object],
    max_heavy_atoms: int = DEFAULT_MAX_HEAVY_ATOMS,
    num_workers: int = 1,
) -> tuple[list[Chem.Mol | None], list[FeaturizationFailure]]:
    """`parse_molecule` over a sequence of SMILES without stopping at bad rows, as `featurize_many` does:
    returns ``(molecules, failures)``, ``molecules`` aligned with the input (None where a row failed)."""
    return _map_rows(_molecule_or_reason, smiles_list, max_heavy_atoms, num_workers)
