"""Tests for protomol_hf.description_protomol (the template description and functional groups)."""

import subprocess
import sys

import pytest
from rdkit import Chem
from test_featurization import BAD_INPUTS

from protomol_hf import description_protomol as dp
from protomol_hf.featurization_protomol import ProtoMolFeaturizationError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"


def test_description_of_aspirin():
    text = dp.describe_molecule(ASPIRIN)
    assert text.startswith("C9H8O4: ")
    assert "molecular weight 180.16" in text
    assert "carboxylic acid" in text and "ester" in text and "benzene ring" in text
    assert "No formal charge." in text and "No stereocentres." in text


def test_description_is_deterministic_within_and_across_processes():
    first = dp.describe_molecule(ASPIRIN)
    assert dp.describe_molecule(ASPIRIN) == first
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "from protomol_hf.description_protomol import describe_molecule;"
            f"print(describe_molecule({ASPIRIN!r}), end='')",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert fresh.stdout == first


def test_description_of_salt_and_stereocentres():
    salt = dp.describe_molecule("CC(=O)[O-].[Na+]")
    assert "2 disconnected fragments" in salt
    assert "Net formal charge 0 with 2 charged atoms." in salt
    assert "carboxylate" in salt
    chiral = dp.describe_molecule("C[C@H](N)C(C)O")
    assert "2 stereocentres (1 specified, 1 unspecified)." in chiral
    assert "primary amine" in chiral and "alcohol" in chiral


def test_functional_group_table_is_large_and_compiles():
    names = [name for name, _ in dp.FUNCTIONAL_GROUP_SMARTS]
    assert len(names) >= 20 and len(set(names)) == len(names)
    for name, smarts in dp.FUNCTIONAL_GROUP_SMARTS:
        assert Chem.MolFromSmarts(smarts) is not None, name


@pytest.mark.parametrize(
    ("smiles", "group"),
    [
        ("CCN", "primary amine"),
        ("CCNCC", "secondary amine"),
        ("CCN(CC)CC", "tertiary amine"),
        ("CC(N)=O", "amide"),
        ("Oc1ccccc1", "phenol"),
        ("CCOCC", "ether"),
        ("CC#N", "nitrile"),
        ("O=[N+]([O-])c1ccccc1", "nitro"),
        ("CS(N)(=O)=O", "sulfonamide"),
        ("NC(N)=O", "urea"),
        ("NC(=N)N", "guanidine"),
        ("O=C1CCCN1", "lactam"),
        ("c1ccncc1", "aromatic nitrogen heterocycle"),
        ("ClCCBr", "chloro group"),
    ],
)
def test_functional_groups_found(smiles, group):
    assert group in dp.find_functional_groups(Chem.MolFromSmiles(smiles))


def test_amide_nitrogen_is_not_an_amine():
    groups = dp.find_functional_groups(Chem.MolFromSmiles("CC(N)=O"))
    assert not any(name.endswith("amine") for name in groups)


@pytest.mark.parametrize(("bad", "reason_part"), BAD_INPUTS[:4])
def test_description_of_bad_input_raises(bad, reason_part):
    with pytest.raises(ProtoMolFeaturizationError, match=reason_part):
        dp.describe_molecule(bad)
