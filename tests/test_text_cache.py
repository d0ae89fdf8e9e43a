"""Text-feature cache: same states as the live text model, reused when nothing changed, rebuilt otherwise."""

import copy
import os
import shutil
import socket

import numpy as np
import pytest
import torch
from conftest import SMILES, tiny_config

from protomol_hf import ProtoMolForMolecularPropertyPrediction
from protomol_hf.text_cache import ProtoMolCachedTextCollator, TextFeatureCache


def build(model, processor, tmp_path, texts, max_length=48):
    return TextFeatureCache.build(
        texts,
        model.protomol,
        processor.tokenizer,
        tmp_path,
        max_length,
        batch_size=2,
        dtype="float32",
        show_progress=False,
    )


def test_cached_states_match_the_text_model_and_give_the_same_predictions(processor, tmp_path):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config()).eval()
    texts = processor.texts_for(SMILES)
    cache = build(model, processor, tmp_path, texts + texts[:2])  # duplicates are stored once
    assert len(cache) == len(set(texts))

    features = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0])
    for feature, text_id in zip(features, cache.text_ids(texts), strict=True):
        feature["text_id"] = text_id
    cached_batch = ProtoMolCachedTextCollator(cache, processor.collator)(features)
    live_batch = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0], return_tensors="pt")
    assert "input_ids" not in cached_batch and cached_batch["text_embeds"].shape[:2] == live_batch["input_ids"].shape
    assert torch.equal(cached_batch["attention_mask"], live_batch["attention_mask"])
    text_ids = [feature["text_id"] for feature in features]
    assert cache.token_counts(text_ids).tolist() == live_batch["attention_mask"].sum(dim=1).tolist()
    with torch.no_grad():
        cached, live = model(**cached_batch), model(**live_batch)
    assert torch.allclose(cached.logits, live.logits, atol=1e-5)
    assert torch.allclose(cached.loss, live.loss, atol=1e-5)


def test_cache_is_reused_only_when_model_texts_and_length_are_unchanged(processor, tmp_path):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config())
    texts = processor.texts_for(SMILES)
    first = build(model, processor, tmp_path, texts)
    (first.directory / "states.npy").touch()
    modified = (first.directory / "states.npy").stat().st_mtime_ns
    again = build(model, processor, tmp_path, list(reversed(texts)))
    assert again.directory == first.directory
    assert (again.directory / "states.npy").stat().st_mtime_ns == modified  # not recomputed
    # The same weights loaded from another folder (another virtual environment) use the same cache.
    model.protomol.text_model.config._name_or_path = "/another/venv/site-packages/text_model"
    assert build(model, processor, tmp_path, texts).directory == first.directory

    assert build(model, processor, tmp_path, texts[:-1]).directory != first.directory
    assert build(model, processor, tmp_path, texts, max_length=16).directory != first.directory
    with torch.no_grad():
        model.protomol.text_model.embeddings.word_embeddings.weight.add_(1.0)
    assert build(model, processor, tmp_path, texts).directory != first.directory


def test_unknown_text_is_a_clear_error(processor, tmp_path):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config())
    cache = build(model, processor, tmp_path, ["a short text"])
    with pytest.raises(KeyError, match="not in the cache"):
        cache.text_ids(["another text"])


def test_cached_states_do_not_depend_on_the_tokenizers_padding_side(processor, tmp_path):
    """A left-padding tokenizer (common for decoders such as Qwen2) must cache the same states: the collator
    pads on the right for training and prediction."""
    model = ProtoMolForMolecularPropertyPrediction(tiny_config()).eval()
    # Different lengths, so batches of two are padded.
    texts = ["ethanol", "an alcohol", "a chlorinated solvent", "benzene, a flat aromatic ring of six carbons"]
    right = build(model, processor, tmp_path / "right", texts)
    left_processor = copy.deepcopy(processor)
    left_processor.tokenizer.padding_side = "left"
    left = build(model, left_processor, tmp_path / "left", texts)
    assert right.directory.name == left.directory.name
    np.testing.assert_array_equal(left.states, right.states)


def test_a_tokenizer_setting_that_changes_the_tokens_gets_its_own_cache(processor, tmp_path):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config())
    texts = processor.texts_for(SMILES)
    first = build(model, processor, tmp_path, texts, max_length=16)  # every template text is longer
    truncating_left = copy.deepcopy(processor)
    truncating_left.tokenizer.truncation_side = "left"
    assert build(model, truncating_left, tmp_path, texts, max_length=16).directory != first.directory


def test_a_failed_build_leaves_no_cache_and_restores_the_model(processor, tmp_path, monkeypatch):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config()).train()

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(model.protomol, "encode_text", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        build(model, processor, tmp_path, processor.texts_for(SMILES))
    assert model.training and not any((tmp_path / "text_features").iterdir())


def test_a_cache_another_run_completed_first_is_used(processor, tmp_path, monkeypatch):
    """Runs sharing a cache folder each write their own copy; the one that renames it into place first wins,
    and no run ever reads a copy that is still being written."""
    model = ProtoMolForMolecularPropertyPrediction(tiny_config())
    texts = processor.texts_for(SMILES)
    other_run = build(model, processor, tmp_path / "other", texts)
    final = tmp_path / "shared" / "text_features" / other_run.directory.name
    write = TextFeatureCache._write

    def write_while_the_other_run_finishes(directory, *args):
        write(directory, *args)
        shutil.copytree(other_run.directory, final)

    monkeypatch.setattr(TextFeatureCache, "_write", staticmethod(write_while_the_other_run_finishes))
    cache = build(model, processor, tmp_path / "shared", texts)
    assert cache.directory == final and len(cache) == len(set(texts))
    assert [path.name for path in final.parent.iterdir()] == [final.name]  # its own copy was removed


def test_a_build_removes_copies_that_killed_builds_left_on_this_machine(processor, tmp_path):
    folder = tmp_path / "text_features"
    host = socket.gethostname()
    killed = folder / f"0123.building-{host}-{2**22 + 1}"  # above Linux's largest process id
    running = folder / f"4567.building-{host}-{os.getppid()}"
    elsewhere = folder / "89ab.building-another-host-1"
    for path in (killed, running, elsewhere):
        (path / "states.npy").parent.mkdir(parents=True)
        (path / "states.npy").write_bytes(b"partial")
    cache = build(ProtoMolForMolecularPropertyPrediction(tiny_config()), processor, tmp_path, ["a text"])
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [cache.directory.name, running.name, elsewhere.name]
    )
