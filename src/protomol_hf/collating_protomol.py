"""Batching of processed molecules into one flat dict of plain tensors.

Plain tensors (no PyG `Batch`) so that the Trainer, accelerate and DeepSpeed can move and cast them.
This file is copied into Hub checkpoints: it imports only numpy and torch.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


class ProtoMolDataCollator:
    """Collate per-molecule features into a batch.

    Each feature is a mapping with `atom_features [num_atoms, F]`, `edge_index [2, num_edges]`,
    `bond_features [num_edges, F']` and either `input_ids` (+ optional `attention_mask`) or
    `text_embeds [seq_len, text_hidden]` (+ `attention_mask`), and optionally `labels [num_tasks]`.

    Returns `atom_features [N, F]`, `edge_index [2, E]` (offset per molecule), `bond_features [E, F']`,
    `molecule_index [N]`, `input_ids` or `text_embeds` padded to `[B, T(, D)]`, `attention_mask [B, T]`
    and, when any molecule has labels, `labels [B, num_tasks]` float with NaN where missing.
    """

    def __init__(self, pad_token_id: int = 0, num_atom_features: int = 9, num_bond_features: int = 3):
        self.pad_token_id = pad_token_id
        # Widths are explicit because a molecule without bonds may arrive as an empty list.
        self.num_atom_features = num_atom_features
        self.num_bond_features = num_bond_features

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Collate the molecules of one batch (see the class docstring for the keys and shapes)."""
        if not features:
            raise ValueError("cannot collate an empty list of molecules")
        atom_features = [_int_matrix(f["atom_features"], self.num_atom_features) for f in features]
        bond_features = [_int_matrix(f["bond_features"], self.num_bond_features) for f in features]
        edge_indices = [np.asarray(f["edge_index"], dtype=np.int64).reshape(2, -1) for f in features]
        atom_counts = np.array([len(a) for a in atom_features])
        offsets = np.concatenate([[0], np.cumsum(atom_counts)[:-1]])
        batch = {
            "atom_features": torch.from_numpy(np.concatenate(atom_features)),
            "edge_index": torch.from_numpy(
                np.concatenate([e + o for e, o in zip(edge_indices, offsets, strict=True)], axis=1)
            ),
            "bond_features": torch.from_numpy(np.concatenate(bond_features)),
            "molecule_index": torch.from_numpy(np.repeat(np.arange(len(features)), atom_counts)),
        }
        batch.update(self._collate_text(features))
        with_labels = [f.get("labels") is not None for f in features]
        if any(with_labels):
            if not all(with_labels):
                raise ValueError(
                    f"molecules {[i for i, has in enumerate(with_labels) if not has]} have no labels, others do"
                )
            batch["labels"] = self._collate_labels(features)
        return batch

    def _collate_text(self, features):
        lengths = [len(f["text_embeds"] if "text_embeds" in f else f["input_ids"]) for f in features]
        max_length = max(lengths)
        attention_mask = torch.zeros(len(features), max_length, dtype=torch.long)
        for row, (feature, length) in enumerate(zip(features, lengths, strict=True)):
            given = feature.get("attention_mask")
            attention_mask[row, :length] = torch.as_tensor(given) if given is not None else 1
        if "text_embeds" in features[0]:
            states = [torch.as_tensor(f["text_embeds"]) for f in features]
            text_embeds = states[0].new_zeros(len(features), max_length, states[0].shape[-1])
            for row, state in enumerate(states):
                text_embeds[row, : len(state)] = state
            return {"text_embeds": text_embeds, "attention_mask": attention_mask}
        input_ids = torch.full((len(features), max_length), self.pad_token_id, dtype=torch.long)
        for row, (feature, length) in enumerate(zip(features, lengths, strict=True)):
            input_ids[row, :length] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    @staticmethod
    def _collate_labels(features):
        rows = [np.atleast_1d(np.asarray(f["labels"], dtype=np.float32)) for f in features]
        if len({len(row) for row in rows}) > 1:
            raise ValueError(
                f"molecules of one batch have different numbers of labels: {sorted({len(r) for r in rows})}"
            )
        return torch.from_numpy(np.stack(rows))


def _int_matrix(values, width):
    """`[num_items, width]` int64 array from an array or nested lists (an empty list gives `[0, width]`)."""
    return np.asarray(values, dtype=np.int64).reshape(-1, width)
