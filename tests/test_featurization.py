"""Tests for protomol_hf.featurization_protomol (SMILES -> molecule -> graph)."""

from __future__ import annotations

import ast
import gzip
import itertools
import math
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from protomol_hf import featurization_protomol as fp

MODULE_PATH = Path(fp.__file__)
HIV_CSV = MODULE_PATH.parent / "datasets" / "hiv.csv.gz"

VARIED_SMILES = [
    "CCO",
    "c1ccccc1",
    "C[C@H](N)O",
    "C/C=C/C",
    "C/C=C\\C",
    "CC(=O)[O-].[Na+]",
    "C[N+](C)(C)C",
    "[U]",
    "*C",
    "[Na+]",
    "C",
    "O=[N+]([O-])c1ccc(cc1)S(N)(=O)=O",
    "N[C@@H](Cc1c[nH]c2ccccc12)C(=O)O",
    "C1C[N+]23CCC[N+]4(C1)CC[S-]1[Fe+2]24([SH+]CC3)[S-]2CC[N+]34CCC[N+]5(CCC3)CC[SH+][Fe+2]1254",
]


def read_hiv_smiles(limit: int) -> list[str]:
    with gzip.open(HIV_CSV, "rt") as handle:
        next(handle)  # header: smiles,HIV_active
        return [line.rsplit(",", 1)[0] for line in itertools.islice(handle, limit)]


def reference_graph(smiles: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Straightforward featurization that reads every RDKit getter for every atom and bond.

    smiles_to_graph skips some getters when the SMILES cannot carry their values;
    this is the slow version it must agree with.
    """
    mol = Chem.MolFromSmiles(smiles)
    atom_getters = (
        (Chem.Atom.GetAtomicNum, fp.ATOMIC_NUM_VOCAB),
        (Chem.Atom.GetChiralTag, fp.CHIRALITY_VOCAB),
        (Chem.Atom.GetTotalDegree, fp.DEGREE_VOCAB),
        (Chem.Atom.GetFormalCharge, fp.FORMAL_CHARGE_VOCAB),
        (Chem.Atom.GetTotalNumHs, fp.NUM_HS_VOCAB),
        (Chem.Atom.GetNumRadicalElectrons, fp.NUM_RADICAL_ELECTRONS_VOCAB),
        (Chem.Atom.GetHybridization, fp.HYBRIDIZATION_VOCAB),
        (Chem.Atom.GetIsAromatic, fp.BOOLEAN_VOCAB),
        (Chem.Atom.IsInRing, fp.BOOLEAN_VOCAB),
    )
    atoms = [[vocab.get(getter(atom), len(vocab)) for getter, vocab in atom_getters] for atom in mol.GetAtoms()]
    edges, bond_rows = [], []
    for bond in mol.GetBonds():
        begin, end = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        row = [
            fp.BOND_TYPE_VOCAB.get(bond.GetBondType(), len(fp.BOND_TYPE_VOCAB)),
            fp.BOND_STEREO_VOCAB.get(bond.GetStereo(), len(fp.BOND_STEREO_VOCAB)),
            int(bond.GetIsConjugated()),
        ]
        edges += [(begin, end), (end, begin)]
        bond_rows += [row, row]
    return (
        np.array(atoms).reshape(-1, 9),
        np.array(edges).reshape(-1, 2).T,
        np.array(bond_rows).reshape(-1, 3),
    )


def assert_graphs_equal(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        np.testing.assert_array_equal(left[key], right[key])


# --- module contract -------------------------------------------------------------------


def test_module_imports_only_stdlib_numpy_and_rdkit():
    # The file ships as Hub remote code, where project modules and torch may be absent.
    tree = ast.parse(MODULE_PATH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative imports break when the file is used as remote code"
            imported.add(node.module.split(".")[0])
    allowed = set(sys.stdlib_module_names) | {"numpy", "rdkit"}
    assert imported <= allowed, imported - allowed


def test_feature_names_and_vocab_sizes():
    assert fp.ATOM_FEATURE_NAMES == (
        "atomic_num",
        "chirality",
        "degree",
        "formal_charge",
        "num_hs",
        "num_radical_electrons",
        "hybridization",
        "is_aromatic",
        "is_in_ring",
    )
    assert fp.BOND_FEATURE_NAMES == ("bond_type", "stereo", "is_conjugated")
    # Listed values plus one trailing "other" index each.
    assert fp.ATOM_FEATURE_VOCAB_SIZES == (119, 5, 12, 12, 10, 6, 7, 3, 3)
    assert fp.BOND_FEATURE_VOCAB_SIZES == (5, 7, 3)
    assert fp.DEFAULT_MAX_HEAVY_ATOMS == 500


# --- graphs of known molecules ---------------------------------------------------------


def test_ethanol_graph():
    graph = fp.smiles_to_graph("CCO")
    atoms, edge_index, bonds = graph["atom_features"], graph["edge_index"], graph["bond_features"]
    assert atoms.shape == (3, 9) and atoms.dtype == np.int64
    assert edge_index.shape == (2, 4) and edge_index.dtype == np.int64
    assert bonds.shape == (4, 3) and bonds.dtype == np.int64
    column = fp.ATOM_FEATURE_NAMES.index
    assert atoms[:, column("atomic_num")].tolist() == [
        fp.ATOMIC_NUM_VOCAB[6],
        fp.ATOMIC_NUM_VOCAB[6],
        fp.ATOMIC_NUM_VOCAB[8],
    ]
    assert atoms[:, column("num_hs")].tolist() == [3, 2, 1]
    assert atoms[:, column("degree")].tolist() == [4, 4, 2]
    directed = set(map(tuple, edge_index.T.tolist()))
    assert directed == {(0, 1), (1, 0), (1, 2), (2, 1)}
    single = fp.BOND_TYPE_VOCAB[Chem.BondType.SINGLE]
    assert bonds[:, 0].tolist() == [single] * 4


def test_edges_come_in_reversed_pairs_with_shared_features():
    graph = fp.smiles_to_graph("N[C@@H](Cc1c[nH]c2ccccc12)C(=O)O")
    forward = graph["edge_index"][:, 0::2]
    backward = graph["edge_index"][:, 1::2]
    np.testing.assert_array_equal(forward, backward[::-1])
    np.testing.assert_array_equal(graph["bond_features"][0::2], graph["bond_features"][1::2])
    assert graph["edge_index"].flags.c_contiguous


def test_benzene_is_aromatic():
    graph = fp.smiles_to_graph("c1ccccc1")
    column = fp.ATOM_FEATURE_NAMES.index
    assert graph["atom_features"][:, column("is_aromatic")].tolist() == [1] * 6
    assert graph["atom_features"][:, column("is_in_ring")].tolist() == [1] * 6
    aromatic = fp.BOND_TYPE_VOCAB[Chem.BondType.AROMATIC]
    assert graph["bond_features"][:, 0].tolist() == [aromatic] * 12
    assert graph["bond_features"][:, 2].tolist() == [1] * 12  # conjugated


def test_formal_charge_index():
    graph = fp.smiles_to_graph("C[N+](C)(C)C")
    charges = graph["atom_features"][:, fp.ATOM_FEATURE_NAMES.index("formal_charge")]
    assert (
        charges.tolist() == [fp.FORMAL_CHARGE_VOCAB[0]] + [fp.FORMAL_CHARGE_VOCAB[1]] + [fp.FORMAL_CHARGE_VOCAB[0]] * 3
    )


def test_stereocentre_chirality():
    column = fp.ATOM_FEATURE_NAMES.index("chirality")
    tags = {}
    for smiles in ("C[C@H](N)O", "C[C@@H](N)O"):
        mol = Chem.MolFromSmiles(smiles)
        expected = fp.CHIRALITY_VOCAB[mol.GetAtomWithIdx(1).GetChiralTag()]
        chirality = fp.smiles_to_graph(smiles)["atom_features"][:, column]
        assert chirality[1] == expected
        unspecified = fp.CHIRALITY_VOCAB[Chem.ChiralType.CHI_UNSPECIFIED]
        assert chirality[[0, 2, 3]].tolist() == [unspecified] * 3
        tags[smiles] = expected
    assert tags["C[C@H](N)O"] != tags["C[C@@H](N)O"]
    assert set(tags.values()) == {
        fp.CHIRALITY_VOCAB[Chem.ChiralType.CHI_TETRAHEDRAL_CW],
        fp.CHIRALITY_VOCAB[Chem.ChiralType.CHI_TETRAHEDRAL_CCW],
    }


def test_double_bond_stereo():
    column = fp.BOND_FEATURE_NAMES.index("stereo")
    trans = fp.smiles_to_graph("C/C=C/C")["bond_features"][:, column]
    cis = fp.smiles_to_graph("C/C=C\\C")["bond_features"][:, column]
    assert trans[2:4].tolist() == [fp.BOND_STEREO_VOCAB[Chem.BondStereo.STEREOE]] * 2
    assert cis[2:4].tolist() == [fp.BOND_STEREO_VOCAB[Chem.BondStereo.STEREOZ]] * 2


@pytest.mark.parametrize("smiles", VARIED_SMILES)
def test_matches_reference_featurization(smiles):
    atoms, edge_index, bonds = reference_graph(smiles)
    graph = fp.smiles_to_graph(smiles)
    np.testing.assert_array_equal(graph["atom_features"], atoms)
    np.testing.assert_array_equal(graph["edge_index"], edge_index)
    np.testing.assert_array_equal(graph["bond_features"], bonds)


def test_matches_reference_on_hiv_sample():
    checked = 0
    for smiles in read_hiv_smiles(300):
        try:
            graph = fp.smiles_to_graph(smiles)
        except fp.ProtoMolFeaturizationError:
            continue
        atoms, edge_index, bonds = reference_graph(smiles)
        np.testing.assert_array_equal(graph["atom_features"], atoms, err_msg=smiles)
        np.testing.assert_array_equal(graph["edge_index"], edge_index, err_msg=smiles)
        np.testing.assert_array_equal(graph["bond_features"], bonds, err_msg=smiles)
        checked += 1
    assert checked > 290


def test_every_index_is_within_its_vocabulary():
    for smiles in VARIED_SMILES:
        graph = fp.smiles_to_graph(smiles)
        assert (graph["atom_features"] >= 0).all() and (graph["bond_features"] >= 0).all()
        assert (graph["atom_features"] < np.array(fp.ATOM_FEATURE_VOCAB_SIZES)).all(), smiles
        assert (graph["bond_features"] < np.array(fp.BOND_FEATURE_VOCAB_SIZES)).all(), smiles


@pytest.mark.parametrize(
    ("smiles", "feature"),
    [
        ("*C", "atomic_num"),  # dummy atom, atomic number 0
        ("*C", "hybridization"),  # dummy atom has UNSPECIFIED hybridization
        ("[C+6]", "formal_charge"),
        ("[U](F)(F)(F)(F)(F)(F)(F)(F)(F)(F)(F)", "degree"),  # degree 11
    ],
)
def test_out_of_range_values_use_the_other_index(smiles, feature):
    column = fp.ATOM_FEATURE_NAMES.index(feature)
    other = fp.ATOM_FEATURE_VOCAB_SIZES[column] - 1
    assert fp.smiles_to_graph(smiles)["atom_features"][0, column] == other


def test_dative_bond_uses_the_other_bond_type():
    # RDKit turns these metal bonds into dative bonds while sanitizing.
    graph = fp.smiles_to_graph(VARIED_SMILES[-1])
    other = fp.BOND_FEATURE_VOCAB_SIZES[0] - 1
    assert (graph["bond_features"][:, 0] == other).sum() == 4  # 2 dative bonds, both directions


@pytest.mark.parametrize("smiles", ["C", "[Na+]", "[U]"])
def test_single_atom_molecules(smiles):
    graph = fp.smiles_to_graph(smiles)
    assert graph["atom_features"].shape == (1, 9)
    assert graph["edge_index"].shape == (2, 0) and graph["edge_index"].dtype == np.int64
    assert graph["bond_features"].shape == (0, 3) and graph["bond_features"].dtype == np.int64


def test_salt_keeps_all_fragments():
    graph = fp.smiles_to_graph("CC(=O)[O-].[Na+]")
    assert graph["atom_features"].shape == (5, 9)
    assert graph["edge_index"].shape == (2, 6)
    sodium = 4
    assert graph["atom_features"][sodium, 0] == fp.ATOMIC_NUM_VOCAB[11]
    assert sodium not in graph["edge_index"]


# --- bad input -------------------------------------------------------------------------

BAD_INPUTS = [
    ("C1CC", "could not parse"),
    ("", "empty"),
    ("   ", "empty"),
    (None, "None"),
    (float("nan"), "NaN"),
    (42, "expected a SMILES string, got int"),
    ("C(C)(C)(C)(C)C", "valence"),
]


@pytest.mark.parametrize(("bad", "reason_part"), BAD_INPUTS)
def test_bad_input_raises_with_input_and_reason(bad, reason_part):
    with pytest.raises(fp.ProtoMolFeaturizationError) as caught:
        fp.smiles_to_graph(bad)
    error = caught.value
    assert isinstance(error, ValueError)
    assert reason_part in error.reason
    assert error.row is None
    assert repr(bad) in str(error) and error.reason in str(error)
    assert error.smiles is bad or (isinstance(bad, float) and math.isnan(error.smiles))


def test_error_message_format_and_pickling():
    error = fp.ProtoMolFeaturizationError("C1CC", "RDKit could not parse it", row=12)
    assert str(error) == "row 12: cannot featurize SMILES 'C1CC': RDKit could not parse it"
    restored = pickle.loads(pickle.dumps(error))
    assert (restored.smiles, restored.reason, restored.row) == ("C1CC", error.reason, 12)
    assert str(restored) == str(error)


def test_over_limit_molecule_raises():
    over_default = "501 heavy atoms exceed the limit of 500"
    with pytest.raises(fp.ProtoMolFeaturizationError, match=over_default):
        fp.smiles_to_graph("C" * 501)
    with pytest.raises(fp.ProtoMolFeaturizationError, match="4 heavy atoms exceed the limit of 3"):
        fp.smiles_to_graph("CCCC", max_heavy_atoms=3)
    assert fp.smiles_to_graph("C" * 500)["atom_features"].shape == (500, 9)


# --- batches ---------------------------------------------------------------------------


def test_featurize_many_keeps_alignment_and_reports_failures():
    smiles_list = ["CCO", None, "C1CC", "c1ccccc1", float("nan"), "", "CCCCCCC"]
    graphs, failures = fp.featurize_many(smiles_list, max_heavy_atoms=6)
    failed_rows = [1, 2, 4, 5, 6]
    assert [row for row, graph in enumerate(graphs) if graph is None] == failed_rows
    assert [failure.row for failure in failures] == failed_rows
    assert all(isinstance(failure, fp.FeaturizationFailure) for failure in failures)
    assert failures[1].smiles == "C1CC" and "could not parse" in failures[1].reason
    assert "7 heavy atoms exceed the limit of 6" in failures[-1].reason
    assert_graphs_equal(graphs[0], fp.smiles_to_graph("CCO"))
    assert_graphs_equal(graphs[3], fp.smiles_to_graph("c1ccccc1"))


def test_featurize_many_with_workers_matches_serial():
    smiles_list = [*read_hiv_smiles(150), None, "C1CC", "CC(=O)[O-].[Na+]", ""]
    serial_graphs, serial_failures = fp.featurize_many(smiles_list, num_workers=1)
    pooled_graphs, pooled_failures = fp.featurize_many(smiles_list, num_workers=2)
    assert serial_failures == pooled_failures
    assert len(serial_failures) >= 3
    assert len(pooled_graphs) == len(serial_graphs) == len(smiles_list)
    for serial, pooled in zip(serial_graphs, pooled_graphs, strict=True):
        assert (serial is None) == (pooled is None)
        if serial is not None:
            assert_graphs_equal(serial, pooled)


def test_featurize_many_rejects_bad_worker_count():
    with pytest.raises(ValueError, match="num_workers"):
        fp.featurize_many(["C"], num_workers=0)


# --- input RDKit would read as another molecule, and input too large to parse ------------


@pytest.mark.parametrize(
    ("smiles", "reason_part"),
    [
        ("CC O", "contains whitespace"),
        ("C C C C", "contains whitespace"),
        ("CC name", "contains whitespace"),
        ("C\nC", "'\\n' at position 1"),
        ("C\tC", "'\\t' at position 1"),
        ("CCÖ", "'Ö' at position 2"),
    ],
)
def test_smiles_that_rdkit_would_cut_short_are_refused(smiles, reason_part):
    # RDKit scores "CC O" as ethane and "CCÖ" as "CC": the molecule read would not be the one written.
    with pytest.raises(fp.ProtoMolFeaturizationError, match=re.escape(reason_part)):
        fp.smiles_to_graph(smiles)


def test_a_cxsmiles_extension_after_a_space_is_still_read():
    assert fp.smiles_to_graph("CC |$a;b$|")["atom_features"].shape == (2, len(fp.ATOM_FEATURE_NAMES))


@pytest.mark.parametrize(
    ("smiles", "reason_part"),
    [
        ("*" * 501, "501 heavy atoms exceed the limit of 500"),
        ("[H]" * 2001, "2001 hydrogens written as atoms exceed the limit of 2000"),
        ("C1" + "C" * 600 + "C1", "602 heavy atoms exceed the limit of 500"),
        ("C" * 10_001, "10001 characters"),
    ],
)
def test_oversized_smiles_are_refused_from_their_text_before_rdkit_parses_them(monkeypatch, smiles, reason_part):
    parsed = []
    monkeypatch.setattr(Chem, "MolFromSmiles", lambda *args, **kwargs: parsed.append(args) or None)
    with pytest.raises(fp.ProtoMolFeaturizationError, match=re.escape(reason_part)):
        fp.smiles_to_graph(smiles)
    assert parsed == []
