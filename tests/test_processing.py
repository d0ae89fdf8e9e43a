"""Tests for ProtoMolDataCollator (batching) and ProtoMolProcessor (featurize + tokenize, save/load)."""

import inspect
import json
import math

import numpy as np
import pytest
import torch
from conftest import SMILES, run_without_protomol_hf
from transformers import AutoProcessor

from protomol_hf import (
    ProtoMolDataCollator,
    ProtoMolFeaturizationError,
    ProtoMolForMolecularPropertyPrediction,
    ProtoMolProcessor,
    canonical_smiles,
    describe_molecule,
    smiles_to_graph,
)

NAN = float("nan")
THREE = ["CCO", "[Na+]", "c1ccccc1"]  # 3, 1 and 6 atoms


def graph_features(smiles, input_ids, labels=None):
    feature = {**smiles_to_graph(smiles), "input_ids": input_ids, "attention_mask": [1] * len(input_ids)}
    if labels is not None:
        feature["labels"] = labels
    return feature


# ----------------------------------------------------------------------------------------- collator


def test_collator_offsets_edges_and_pads_text():
    graphs = [smiles_to_graph(s) for s in THREE]
    features = [
        {**graphs[0], "input_ids": [101, 5, 6, 102], "attention_mask": [1, 1, 1, 1], "labels": [1.0, NAN]},
        {**graphs[1], "input_ids": [101, 102], "attention_mask": [1, 1], "labels": [0.0, 1.0]},
        {**graphs[2], "input_ids": [101, 7, 102], "attention_mask": [1, 1, 1], "labels": [NAN, 0.0]},
    ]
    batch = ProtoMolDataCollator(pad_token_id=99)(features)

    assert batch["atom_features"].shape == (10, 9) and batch["atom_features"].dtype == torch.long
    assert torch.equal(batch["atom_features"], torch.from_numpy(np.concatenate([g["atom_features"] for g in graphs])))
    assert batch["molecule_index"].tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2, 2]

    ethanol_edges, sodium_edges, benzene_edges = (g["edge_index"].shape[1] for g in graphs)
    assert (ethanol_edges, sodium_edges, benzene_edges) == (4, 0, 12)
    num_edges = ethanol_edges + benzene_edges
    assert batch["edge_index"].shape == (2, num_edges) and batch["edge_index"].dtype == torch.long
    assert batch["edge_index"][:, :ethanol_edges].tolist() == graphs[0]["edge_index"].tolist()
    assert batch["edge_index"][:, ethanol_edges:].tolist() == (graphs[2]["edge_index"] + 4).tolist()
    # Every edge stays inside its own molecule.
    molecule_index = batch["molecule_index"]
    assert torch.equal(molecule_index[batch["edge_index"][0]], molecule_index[batch["edge_index"][1]])
    assert batch["bond_features"].shape == (num_edges, 3)
    assert torch.equal(batch["bond_features"], torch.from_numpy(np.concatenate([g["bond_features"] for g in graphs])))

    assert batch["input_ids"].tolist() == [[101, 5, 6, 102], [101, 102, 99, 99], [101, 7, 102, 99]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]

    labels = batch["labels"]
    assert labels.shape == (3, 2) and labels.dtype == torch.float32
    assert torch.isnan(labels).tolist() == [[False, True], [False, False], [True, False]]
    assert labels[0, 0] == 1.0 and labels[1, 1] == 1.0 and labels[2, 1] == 0.0


def test_collator_keeps_a_padding_mask_given_with_the_features():
    features = [graph_features("CCO", [101, 5, 0, 0]), graph_features("CC", [101, 102])]
    features[0]["attention_mask"] = [1, 1, 0, 0]
    batch = ProtoMolDataCollator()(features)
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


def test_collator_accepts_a_bondless_molecule_as_empty_json_lists():
    sodium_json = {
        "atom_features": smiles_to_graph("[Na+]")["atom_features"].tolist(),
        "edge_index": [],
        "bond_features": [],
    }
    features = [
        {**sodium_json, "input_ids": [101, 102]},
        {**{k: v.tolist() for k, v in smiles_to_graph("CO").items()}, "input_ids": [101, 5, 102]},
    ]
    batch = ProtoMolDataCollator()(features)
    assert batch["atom_features"].shape == (3, 9)
    assert batch["edge_index"].tolist() == [[1, 2], [2, 1]]  # C-O offset by the one sodium atom
    assert batch["bond_features"].shape == (2, 3) and batch["bond_features"].dtype == torch.long
    assert batch["molecule_index"].tolist() == [0, 1, 1]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]  # no mask given: ones on real tokens
    assert "labels" not in batch

    only_sodium = ProtoMolDataCollator()([{**sodium_json, "input_ids": [101, 102]}])
    assert only_sodium["edge_index"].shape == (2, 0) and only_sodium["bond_features"].shape == (0, 3)


def test_collator_rejects_mixed_labelled_and_unlabelled_molecules():
    features = [graph_features("CCO", [101, 102], labels=[1.0]), graph_features("CC", [101, 102])]
    with pytest.raises(ValueError, match=r"\[1\]"):
        ProtoMolDataCollator()(features)


def test_collator_rejects_different_label_counts():
    features = [graph_features("CCO", [101, 102], labels=[1.0]), graph_features("CC", [101, 102], labels=[1.0, 0.0])]
    with pytest.raises(ValueError, match="different numbers of labels"):
        ProtoMolDataCollator()(features)


def test_collator_rejects_an_empty_batch():
    with pytest.raises(ValueError):
        ProtoMolDataCollator()([])


def test_collator_pads_text_embeds_with_zeros():
    torch.manual_seed(0)
    states = [torch.randn(3, 8), torch.randn(5, 8), torch.randn(1, 8)]
    features = [{**smiles_to_graph(s), "text_embeds": e} for s, e in zip(THREE, states, strict=True)]
    features[1]["attention_mask"] = [1, 1, 1, 1, 0]  # trailing padding already present in this row
    batch = ProtoMolDataCollator()(features)

    assert "input_ids" not in batch
    text_embeds = batch["text_embeds"]
    assert text_embeds.shape == (3, 5, 8) and text_embeds.dtype == torch.float32
    for row, state in enumerate(states):
        assert torch.equal(text_embeds[row, : len(state)], state)
        assert torch.count_nonzero(text_embeds[row, len(state) :]) == 0
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]]
    assert batch["molecule_index"].tolist() == [0, 0, 0, 1, 2, 2, 2, 2, 2, 2]


# ---------------------------------------------------------------------------------------- processor


def test_single_smiles_gives_one_feature_dict(processor):
    feature = processor(smiles="CCO", labels=[1.0, NAN])
    assert isinstance(feature, dict)
    assert feature["atom_features"].shape == (3, 9)
    assert feature["edge_index"].shape == (2, 4) and feature["bond_features"].shape == (4, 3)
    assert feature["input_ids"][0] == processor.tokenizer.cls_token_id
    assert len(feature["attention_mask"]) == len(feature["input_ids"])
    assert feature["labels"].shape == (2,) and feature["labels"][0] == 1.0 and math.isnan(feature["labels"][1])

    features = processor(smiles=["CCO"])
    assert isinstance(features, list) and len(features) == 1


def test_an_empty_text_is_named_by_its_row_only_in_a_list(processor):
    with pytest.raises(ValueError, match=r"^row 1: text is empty or not a string \(' '\)"):
        processor.texts_for(["CCO", "CCN"], ["ethanol", " "])
    with pytest.raises(ValueError, match=r"^text is empty or not a string \(''\)"):
        processor.texts_for(["CCO"], "")


def test_batch_matches_the_model_forward_signature(processor):
    forward = inspect.signature(ProtoMolForMolecularPropertyPrediction.forward).parameters
    required = {
        name
        for name, p in forward.items()
        if p.default is inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD
    }
    required.discard("self")

    batch = processor(smiles=SMILES, return_tensors="pt")
    assert set(batch) == {
        "atom_features",
        "edge_index",
        "bond_features",
        "molecule_index",
        "input_ids",
        "attention_mask",
    }
    assert required <= set(batch) and set(batch) <= set(forward)
    assert batch["input_ids"].shape[0] == len(SMILES) and batch["molecule_index"].max() == len(SMILES) - 1
    assert all(isinstance(v, torch.Tensor) for v in batch.values())

    labelled = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0], return_tensors="pt")
    assert set(labelled) == set(batch) | {"labels"} and "labels" in forward
    assert labelled["labels"].shape == (len(SMILES), 1) and labelled["labels"].dtype == torch.float32


def test_batch_equals_collated_features(processor):
    batch = processor(smiles=THREE, return_tensors="pt")
    collated = processor.collator(processor(smiles=THREE))
    assert batch.keys() == collated.keys()
    assert all(torch.equal(batch[k], collated[k]) for k in batch)
    pad = processor.tokenizer.pad_token_id
    assert torch.equal(
        batch["input_ids"][batch["attention_mask"] == 0],
        torch.full_like(batch["input_ids"][batch["attention_mask"] == 0], pad),
    )


def test_text_source_smiles_tokenizes_the_canonical_smiles(tokenizer):
    processor = ProtoMolProcessor(tokenizer, text_source="smiles", max_text_length=64)
    smiles = ["OCC", "c1ccccc1O", "[Na+].CC(=O)[O-]"]
    features = processor(smiles=smiles)
    for canonical, feature in zip(["CCO", "Oc1ccccc1", "CC(=O)[O-].[Na+]"], features, strict=True):
        assert list(feature["input_ids"]) == tokenizer(canonical)["input_ids"]
        decoded = tokenizer.decode(feature["input_ids"], skip_special_tokens=True)
        assert decoded.replace(" ", "") == canonical.lower()  # the MiniLM tokenizer is uncased


def test_smiles_text_does_not_depend_on_how_the_smiles_is_written(tokenizer):
    # Kekule and aromatic, other atom order, explicit hydrogens: one molecule, one text (a source's writing
    # style would otherwise reach the model: ClinTox writes failed and approved drugs differently).
    processor = ProtoMolProcessor(tokenizer, text_source="smiles")
    writings = ["Oc1ccccc1", "OC1=CC=CC=C1", "c1ccc(O)cc1", "[OH]c1ccccc1"]
    assert len({canonical_smiles(s) for s in writings}) == 1
    assert len({tuple(feature["input_ids"]) for feature in processor(smiles=writings)}) == 1


def test_text_source_can_be_chosen_per_call(processor, tokenizer):
    assert processor.text_source == "template"
    feature = processor(smiles="c1ccccc1O", text_source="smiles")
    assert list(feature["input_ids"]) == tokenizer("Oc1ccccc1")["input_ids"]


def test_template_text_is_the_deterministic_description(processor, tokenizer):
    first = processor(smiles=SMILES)
    second = ProtoMolProcessor(tokenizer, max_text_length=48)(smiles=SMILES)
    assert [list(f["input_ids"]) for f in first] == [list(f["input_ids"]) for f in second]
    for s, feature in zip(SMILES, first, strict=True):
        expected = tokenizer(describe_molecule(s), truncation=True, max_length=48)["input_ids"]
        assert list(feature["input_ids"]) == expected
        assert list(feature["input_ids"]) != tokenizer(s)["input_ids"]


def test_given_text_is_used_and_required(tokenizer):
    processor = ProtoMolProcessor(tokenizer, text_source="given")
    with pytest.raises(ValueError, match="given"):
        processor(smiles=["CCO", "CC"])
    features = processor(smiles=["CCO", "CC"], text=["ethanol", "ethane gas"])
    assert [list(f["input_ids"]) for f in features] == tokenizer(["ethanol", "ethane gas"])["input_ids"]
    single = processor(smiles="CCO", text="ethanol")
    assert list(single["input_ids"]) == tokenizer("ethanol")["input_ids"]


@pytest.mark.parametrize("bad", ["", "   \n", None])
def test_empty_given_text_names_the_row(processor, bad):
    with pytest.raises(ValueError, match="row 2"):
        processor(smiles=["CCO", "CC", "C"], text=["ethanol", "ethane", bad])


def test_text_count_must_match_smiles(processor):
    with pytest.raises(ValueError, match="2 texts for 3 SMILES"):
        processor(smiles=["CCO", "CC", "C"], text=["a", "b"])
    with pytest.raises(ValueError):
        processor(smiles=["CCO", "CC"], text="one text for two molecules")


def test_text_is_truncated_to_max_text_length(tokenizer):
    processor = ProtoMolProcessor(tokenizer, max_text_length=10)
    long_smiles = "CC(C)Cc1ccc(cc1)C(C)C(=O)O"
    assert len(tokenizer(describe_molecule(long_smiles))["input_ids"]) > 10
    feature = processor(smiles=long_smiles)
    assert len(feature["input_ids"]) == 10 and feature["input_ids"][-1] == tokenizer.sep_token_id
    batch = processor(smiles=SMILES, text_source="smiles", return_tensors="pt")
    assert batch["input_ids"].shape == (len(SMILES), 10)
    expected = [min(10, len(tokenizer(canonical_smiles(s))["input_ids"])) for s in SMILES]
    assert batch["attention_mask"].sum(1).tolist() == expected


def test_label_shapes(processor):
    batch = processor(smiles=THREE, labels=[1.0, 0.0, NAN], return_tensors="pt")
    assert batch["labels"].shape == (3, 1)
    assert batch["labels"][:2, 0].tolist() == [1.0, 0.0] and torch.isnan(batch["labels"][2, 0])

    multi = [[1.0, NAN, 0.5, 2.0], [0.0, 1.0, NAN, 3.0], [NAN, NAN, 1.0, 4.0]]
    batch = processor(smiles=THREE, labels=multi, return_tensors="pt")
    assert batch["labels"].shape == (3, 4) and batch["labels"].dtype == torch.float32
    assert torch.equal(torch.isnan(batch["labels"]), torch.isnan(torch.tensor(multi)))
    assert torch.equal(torch.nan_to_num(batch["labels"]), torch.nan_to_num(torch.tensor(multi)))

    features = processor(smiles=THREE, labels=multi)
    assert [f["labels"].shape for f in features] == [(4,)] * 3


@pytest.mark.parametrize("labels", [[1.0, 0.0], [1.0, 0.0, 1.0, 0.0], [[1.0, 0.0]] * 2, [[[1.0]]] * 3])
def test_wrong_label_count_raises(processor, labels):
    with pytest.raises(ValueError):
        processor(smiles=THREE, labels=labels)


def test_invalid_smiles_error_names_every_failed_row(processor):
    with pytest.raises(ProtoMolFeaturizationError) as caught:
        processor(smiles=["CCO", "xyz", "CC", "C1CC"])
    message = str(caught.value)
    assert "row 1" in message and "row 3" in message
    assert "row 0" not in message and "row 2" not in message
    assert "'xyz'" in message
    assert caught.value.row == 1 and caught.value.smiles == "xyz"


def test_single_invalid_smiles_has_no_row(processor):
    with pytest.raises(ProtoMolFeaturizationError) as caught:
        processor(smiles="xyz")
    assert caught.value.row is None and "row" not in str(caught.value)


def test_max_heavy_atoms_is_enforced(tokenizer):
    processor = ProtoMolProcessor(tokenizer, max_heavy_atoms=5)
    assert processor(smiles="CCCCC")["atom_features"].shape == (5, 9)
    with pytest.raises(ProtoMolFeaturizationError, match="6 heavy atoms exceed the limit of 5"):
        processor(smiles=["CC", "CCCCCC"])


def test_unknown_text_source_in_constructor_raises(tokenizer):
    with pytest.raises(ValueError, match="text_source"):
        ProtoMolProcessor(tokenizer, text_source="description")


def test_unknown_text_source_in_call_raises(processor):
    with pytest.raises(ValueError, match="text_source"):
        processor(smiles=["CCO", "CC"], text_source="bogus")


def test_return_tensors_other_than_pt_raises(processor):
    with pytest.raises(ValueError, match="return_tensors"):
        processor(smiles=["CCO", "CC"], return_tensors="np")


def test_missing_smiles_raises(processor):
    with pytest.raises(ValueError, match="smiles"):
        processor(text=["ethanol"])


# ---------------------------------------------------------------------------------------- save/load


def test_save_and_load_round_trip(tokenizer, tmp_path):
    processor = ProtoMolProcessor(tokenizer, text_source="smiles", max_text_length=17, max_heavy_atoms=100)
    processor.save_pretrained(tmp_path / "protomol_processor")
    loaded = ProtoMolProcessor.from_pretrained(tmp_path / "protomol_processor")
    assert (loaded.text_source, loaded.max_text_length, loaded.max_heavy_atoms) == ("smiles", 17, 100)

    expected = processor(smiles=SMILES, labels=list(range(len(SMILES))), return_tensors="pt")
    got = loaded(smiles=SMILES, labels=list(range(len(SMILES))), return_tensors="pt")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert expected["input_ids"].shape[1] == 17  # the long SMILES is truncated

    default = ProtoMolProcessor(tokenizer)
    default.save_pretrained(tmp_path / "default_processor")
    reloaded = ProtoMolProcessor.from_pretrained(tmp_path / "default_processor")
    assert (reloaded.text_source, reloaded.max_text_length, reloaded.max_heavy_atoms) == (
        default.text_source,
        default.max_text_length,
        default.max_heavy_atoms,
    )


def test_auto_processor_loads_remote_code_without_the_package(tokenizer, tmp_path):
    processor = ProtoMolProcessor(tokenizer, text_source="smiles", max_text_length=17, max_heavy_atoms=100)
    checkpoint = tmp_path / "protomol_processor"  # no dot in the name: remote code needs that
    processor.save_pretrained(checkpoint)
    assert json.loads((checkpoint / "processor_config.json").read_text())["auto_map"]["AutoProcessor"] == (
        "processing_protomol.ProtoMolProcessor"
    )
    expected = processor(smiles=SMILES)

    stdout = run_without_protomol_hf(
        f"""
        import json
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
        features = processor(smiles={SMILES!r})
        try:
            processor(smiles="C" * 101)
            too_big = "accepted"
        except ValueError as error:
            too_big = type(error).__name__
        print(json.dumps({{
            "class": type(processor).__name__,
            "module": type(processor).__module__,
            "options": [processor.text_source, processor.max_text_length, processor.max_heavy_atoms],
            "input_ids": [list(map(int, f["input_ids"])) for f in features],
            "atom_features": [f["atom_features"].tolist() for f in features],
            "too_big": too_big,
        }}))
        """,
        cwd=tmp_path,
    )
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["class"] == "ProtoMolProcessor" and not loaded["module"].startswith("protomol_hf")
    assert loaded["options"] == ["smiles", 17, 100]
    assert loaded["input_ids"] == [list(map(int, f["input_ids"])) for f in expected]
    assert max(len(ids) for ids in loaded["input_ids"]) == 17
    assert loaded["atom_features"] == [f["atom_features"].tolist() for f in expected]
    assert loaded["too_big"] == "ProtoMolFeaturizationError"


def test_auto_processor_in_process_resolves_the_registered_class(tokenizer, tmp_path):
    ProtoMolProcessor(tokenizer, text_source="smiles", max_text_length=17).save_pretrained(
        tmp_path / "protomol_processor"
    )
    loaded = AutoProcessor.from_pretrained(tmp_path / "protomol_processor")
    assert type(loaded) is ProtoMolProcessor
    assert (loaded.text_source, loaded.max_text_length) == ("smiles", 17)
