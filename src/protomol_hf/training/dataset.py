"""A table's rows as a featurized `datasets.Dataset` (graph arrays, text, labels; cached on disk) and the
collator that batches it, with the frozen text model's states cached once (text_cache.py)."""

import hashlib
import json
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value
from rdkit import Chem

from .. import description_protomol, featurization_protomol, processing_protomol
from ..collating_protomol import ProtoMolDataCollator
from ..data import MolecularTable
from ..featurization_protomol import ATOM_FEATURE_NAMES, BOND_FEATURE_NAMES, mol_to_graph
from ..modeling_protomol import ProtoMolForMolecularPropertyPrediction
from ..processing_protomol import ProtoMolProcessor, molecule_texts
from ..text_cache import ProtoMolCachedTextCollator, TextFeatureCache
from .arguments import DataArguments


def _featurize_rows(batch, text_source):
    """`datasets.map` function: graph arrays and the description of each molecule, both from the RDKit molecule
    the table parsed (carried as RDKit's binary form, which restores it without parsing the SMILES again)."""
    molecules = [Chem.Mol(binary) for binary in batch["molecule"]]
    graphs = [mol_to_graph(molecule, smiles) for molecule, smiles in zip(molecules, batch["smiles"], strict=True)]
    texts = molecule_texts(molecules, batch.get("text"), text_source)
    return {
        "atom_features": [g["atom_features"] for g in graphs],
        "edge_index": [g["edge_index"] for g in graphs],
        "bond_features": [g["bond_features"] for g in graphs],
        "text": texts,
    }


def featurize_table(
    table: MolecularTable, processor: ProtoMolProcessor, cache_dir: str | PathLike[str], num_proc: int = 1
) -> Dataset:
    """A `datasets.Dataset` of graph arrays, text and labels for every row of `table`, cached on disk and
    reused while the molecules, labels, texts and featurizer are unchanged."""
    columns = {
        "smiles": table.smiles,
        "molecule": [molecule.ToBinary() for molecule in table.molecules],
        "labels": table.labels.tolist(),
    }
    if table.texts is not None:
        columns["text"] = table.texts
    digest = hashlib.sha256()
    # The code that turns a row into graph arrays and text is part of the key: a change to it must not reuse
    # an old cache.
    for source_file in (featurization_protomol.__file__, description_protomol.__file__, processing_protomol.__file__):
        digest.update(Path(source_file).read_bytes())
    digest.update(
        json.dumps([columns["smiles"], columns.get("text"), processor.text_source, processor.max_heavy_atoms]).encode()
    )
    digest.update(np.ascontiguousarray(table.labels).tobytes())
    cache_file = Path(cache_dir) / "featurized" / f"{digest.hexdigest()[:24]}.arrow"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    features = Features(
        {
            "labels": List(Value("float32")),
            "atom_features": Array2D(shape=(None, len(ATOM_FEATURE_NAMES)), dtype="int64"),
            "edge_index": List(List(Value("int64")), length=2),
            "bond_features": Array2D(shape=(None, len(BOND_FEATURE_NAMES)), dtype="int64"),
            "text": Value("string"),
        }
    )
    return Dataset.from_dict(columns).map(
        _featurize_rows,
        batched=True,
        batch_size=256,
        fn_kwargs={"text_source": processor.text_source},
        remove_columns=["smiles", "molecule"],
        features=features,
        num_proc=num_proc if num_proc > 1 else None,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        desc="Featurizing molecules",
    )


def prepare_dataset(
    table: MolecularTable,
    processor: ProtoMolProcessor,
    model: ProtoMolForMolecularPropertyPrediction,
    data_args: DataArguments,
    device: str | torch.device | None = None,
) -> tuple[Dataset, ProtoMolDataCollator | ProtoMolCachedTextCollator]:
    """The featurized dataset (numpy format) and its collator. With a frozen text model (and the cache on),
    rows carry a `text_id` into the on-disk token-state cache, computed on `device` (the training device: a
    GPU caches in seconds what a CPU takes minutes for); otherwise their tokenized description."""
    dataset = featurize_table(table, processor, data_args.cache_dir, data_args.preprocessing_num_workers)
    collator: ProtoMolDataCollator | ProtoMolCachedTextCollator
    if model.config.text_model_mode == "frozen" and data_args.cache_text_features:
        cache = TextFeatureCache.build(
            dataset["text"],
            model.protomol,
            processor.tokenizer,
            data_args.cache_dir,
            processor.max_text_length,
            device=device,
        )
        text_ids = cache.text_ids(dataset["text"])
        dataset = dataset.add_column("text_id", text_ids)
        dataset = dataset.add_column("length", cache.token_counts(text_ids).tolist())
        collator = ProtoMolCachedTextCollator(cache, processor.collator)
    else:

        def tokenize(batch):
            tokens = processor.tokenizer(batch["text"], truncation=True, max_length=processor.max_text_length)
            return {**tokens, "length": [len(ids) for ids in tokens["input_ids"]]}

        dataset = dataset.map(tokenize, batched=True, desc="Tokenizing descriptions")
        collator = processor.collator
    # `length` (tokens per description) lets `--train_sampling_strategy group_by_length` batch descriptions of
    # similar length, so the refiner and the cross-attention pad less.
    return dataset.remove_columns("text").with_format("numpy"), collator
