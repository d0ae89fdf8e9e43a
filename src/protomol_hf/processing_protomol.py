"""ProtoMolProcessor: SMILES (+ optional text) -> graph arrays and description tokens.

Each SMILES is parsed once: its graph and its description come from the same RDKit molecule. This file
is copied into Hub checkpoints: it imports only its siblings, numpy, torch, RDKit and transformers.
"""

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import ArrayLike
from rdkit import Chem
from transformers import PreTrainedTokenizerBase, ProcessorMixin

from .collating_protomol import ProtoMolDataCollator
from .description_protomol import canonical_smiles, describe_molecule
from .featurization_protomol import (
    ATOM_FEATURE_NAMES,
    BOND_FEATURE_NAMES,
    DEFAULT_MAX_HEAVY_ATOMS,
    ProtoMolFeaturizationError,
    mol_to_graph,
    parse_molecule,
)

TEXT_SOURCES = ("template", "smiles", "given")


def _check_text_source(text_source):
    if text_source not in TEXT_SOURCES:
        raise ValueError(f"text_source={text_source!r} is not supported; choose one of {TEXT_SOURCES}")


def molecule_texts(
    molecules: Sequence[str | Chem.Mol], text: str | Sequence[str] | None, text_source: str
) -> list[str]:
    """The description of each molecule (a SMILES or, parsed once already, an RDKit molecule): the given
    `text` (checked non-empty), else by `text_source` ("smiles": the canonical SMILES, "template": the RDKit
    description)."""
    _check_text_source(text_source)
    if text is not None:
        texts = [text] if isinstance(text, str) else list(text)
        if len(texts) != len(molecules):
            raise ValueError(f"got {len(texts)} texts for {len(molecules)} SMILES")
        for row, item in enumerate(texts):
            if not isinstance(item, str) or not item.strip():
                # A lone text has no row to name (callers such as `protomol explain` name the molecule).
                where = "" if isinstance(text, str) else f"row {row}: "
                raise ValueError(f"{where}text is empty or not a string ({item!r})")
        return texts
    if text_source == "given":
        raise ValueError('text_source="given" needs `text` for every molecule')
    if text_source == "smiles":
        # Canonical, so the text says which molecule it is and not how a source happened to write it (ClinTox
        # writes its failed drugs in Kekule form and most approved ones aromatic: the raw string leaks the label).
        return [canonical_smiles(molecule) for molecule in molecules]
    return [describe_molecule(molecule) for molecule in molecules]


class ProtoMolProcessor(ProcessorMixin):
    """Featurizes molecules for ProtoMol and tokenizes their descriptions.

    Args:
        tokenizer: the text model's tokenizer.
        text_source (`str`, defaults to "template"): where a molecule's text comes from when none is
            given: "template" (deterministic RDKit description), "smiles" (RDKit's canonical SMILES) or
            "given" (the caller must pass `text`).
        max_text_length (`int`, defaults to 256): descriptions are truncated to this many tokens.
        max_heavy_atoms (`int`, defaults to 500): larger molecules are rejected.

    `processor(smiles=[...], return_tensors="pt")` returns a ready batch for the model; without
    `return_tensors` it returns one dict of features per molecule (for `datasets.map` and the collator).
    """

    tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | None = None,
        text_source: str = "template",
        max_text_length: int = 256,
        max_heavy_atoms: int = DEFAULT_MAX_HEAVY_ATOMS,
        **kwargs: Any,
    ):
        _check_text_source(text_source)
        self.text_source = text_source
        self.max_text_length = max_text_length
        self.max_heavy_atoms = max_heavy_atoms
        super().__init__(tokenizer, **kwargs)

    @property
    def collator(self) -> ProtoMolDataCollator:
        """The collator that batches this processor's per-molecule features (pads with the tokenizer's pad id)."""
        return ProtoMolDataCollator(
            pad_token_id=self.tokenizer.pad_token_id or 0,
            num_atom_features=len(ATOM_FEATURE_NAMES),
            num_bond_features=len(BOND_FEATURE_NAMES),
        )

    def texts_for(
        self,
        molecules: Sequence[str | Chem.Mol],
        text: str | Sequence[str] | None = None,
        text_source: str | None = None,
    ) -> list[str]:
        """The description of each molecule (SMILES or parsed molecules) under `text_source` (list in, list out)."""
        return molecule_texts(molecules, text, text_source or self.text_source)

    @staticmethod
    def post_process(logits: Any, problem_type: str) -> Any:
        """Model logits `[batch, num_tasks]` (a torch tensor or a numpy array, returned as the same kind) as
        predictions: probabilities for classification, the values as they are (already in the target's units)
        for regression. The one place outputs become predictions: `model.predict`, prediction, explanation,
        and training's metrics and test predictions all call it."""
        if problem_type != "classification":
            return logits
        if isinstance(logits, torch.Tensor):
            return torch.sigmoid(logits)
        return torch.sigmoid(torch.from_numpy(np.asarray(logits))).numpy()

    def featurize_molecules(
        self,
        molecules: Sequence[Chem.Mol],
        smiles: Sequence[object] | None = None,
        text: str | Sequence[str] | None = None,
        text_source: str | None = None,
    ) -> list[dict[str, Any]]:
        """The features of molecules parsed already (`parse_molecule`): graph arrays and description tokens, each
        from the one molecule. `smiles` are the strings they were parsed from (they let molecules without stereo
        marks skip reading stereo); `text` and `text_source` as in `__call__`."""
        sources: Sequence[object] = smiles if smiles is not None else [None] * len(molecules)
        graphs = [mol_to_graph(molecule, source) for molecule, source in zip(molecules, sources, strict=True)]
        texts = self.texts_for(molecules, text=text, text_source=text_source)
        tokens = self.tokenizer(texts, truncation=True, max_length=self.max_text_length)
        return [
            {**graph, "input_ids": tokens["input_ids"][i], "attention_mask": tokens["attention_mask"][i]}
            for i, graph in enumerate(graphs)
        ]

    def __call__(
        self,
        smiles: str | Sequence[str] | None = None,
        text: str | Sequence[str] | None = None,
        labels: ArrayLike | None = None,
        text_source: str | None = None,
        return_tensors: Literal["pt"] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Featurize `smiles` (a string or a list), with optional `text` and `labels` (`[num_molecules]` or
        `[num_molecules, num_tasks]`, NaN where missing). Invalid molecules raise `ProtoMolFeaturizationError`
        naming every failed row.

        Returns the features of each molecule (`atom_features`, `edge_index`, `bond_features`, `input_ids`,
        `attention_mask`, optional `labels`): one dict for a single SMILES, a list of dicts for a list, or, with
        `return_tensors="pt"`, the collated batch of tensors (see [`ProtoMolDataCollator`])."""
        if smiles is None:
            raise ValueError("ProtoMolProcessor needs `smiles`")
        single = isinstance(smiles, str)
        smiles_list = [smiles] if isinstance(smiles, str) else list(smiles)
        molecules, failures = [], []
        for row, item in enumerate(smiles_list):
            try:
                molecules.append(parse_molecule(item, max_heavy_atoms=self.max_heavy_atoms))
            except ProtoMolFeaturizationError as error:
                failures.append(ProtoMolFeaturizationError(item, error.reason, row=None if single else row))
        if failures:
            first = failures[0]
            if len(failures) == 1:
                raise first
            others = "; ".join(f"row {f.row}: {f.reason}" for f in failures[1:6])
            more = f" and {len(failures) - 6} more" if len(failures) > 6 else ""
            raise ProtoMolFeaturizationError(
                first.smiles, f"{first.reason} ({len(failures) - 1} more invalid rows: {others}{more})", row=first.row
            )

        label_rows = self._label_rows(labels, len(smiles_list), single)
        features = self.featurize_molecules(molecules, smiles_list, text, text_source)
        if label_rows is not None:
            for molecule_features, label_row in zip(features, label_rows, strict=True):
                molecule_features["labels"] = label_row
        if return_tensors is None:
            return features[0] if single else features
        if return_tensors != "pt":
            raise ValueError(f"return_tensors={return_tensors!r} is not supported; use 'pt' or None")
        return self.collator(features)

    @staticmethod
    def _label_rows(labels, num_molecules, single):
        """Labels as `[num_molecules, num_tasks]` float32 (a 1-D list is one label per molecule,
        or, for a single SMILES, that molecule's tasks)."""
        if labels is None:
            return None
        array = np.asarray(labels, dtype=np.float32)
        if single:
            array = array.reshape(1, -1)
        elif array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[0] != num_molecules:
            raise ValueError(f"got labels for {array.shape[0]} molecules, expected {num_molecules}")
        return array


__all__ = ["ProtoMolProcessor", "molecule_texts"]
