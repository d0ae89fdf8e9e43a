"""On-disk cache of frozen text-model token states, one entry per distinct text.

With a frozen language model, its token states for a text never change, so they are computed once
and memory-mapped: every epoch then runs only the graph branch, refiner, fusion and prototypes.
The cache key covers the text model's weights and config, the token ids the tokenizer gives (so every
tokenizer setting), the maximum length, the storage dtype and the texts, so a change to any of them builds a
new cache.
"""

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from .collating_protomol import ProtoMolDataCollator
from .modeling_protomol import ProtoMolModel

_STORAGE_DTYPES = {"float16": np.float16, "float32": np.float32}


def _fingerprint_text_model(text_model, token_ids, max_length, dtype, texts):
    digest = hashlib.sha256()
    # Not where the model was loaded from: the same weights installed in another environment (the bundled
    # MiniLM lives in site-packages) must find the cache, and the weights themselves are hashed below.
    config = {key: value for key, value in text_model.config.to_dict().items() if key != "_name_or_path"}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(text_model.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}".encode())
        # The stored bytes as they are: no float32 copy of a multi-GB model, and a bf16 model (whose token
        # states differ from the float32 model's) gets its own cache.
        digest.update(tensor.detach().reshape(-1).view(torch.uint8).cpu().numpy())
    # The token ids, not the tokenizer's vocabulary: they carry every setting that changes them (lower-casing,
    # truncation side, special tokens) as well as the maximum length.
    for ids in token_ids:
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
        digest.update(b"|")
    digest.update(f"{max_length}|{dtype}".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


# A cache being written: `<key>.building-<host>-<pid>`, renamed to `<key>` when complete.
_BUILDING = ".building-"


def _remove_abandoned_builds(folder: Path) -> None:
    """Delete the copies that builds killed on this machine left behind (a cache can take gigabytes): those
    whose process no longer runs. Other machines' builds, which may share the folder, are left alone."""
    for path in folder.glob(f"*{_BUILDING}{socket.gethostname()}-*"):
        pid = int(path.name.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # another user's process, still running
            pass


class TextFeatureCache:
    """Token states `[num_tokens_i, text_hidden]` of each distinct text, read from a memory-mapped file."""

    def __init__(self, directory: str | PathLike[str]):
        self.directory = Path(directory)
        index = json.loads((self.directory / "index.json").read_text())
        self.texts = index["texts"]
        self._row_of_text = {text: row for row, text in enumerate(self.texts)}
        self.offsets = np.load(self.directory / "offsets.npy")
        self.states = np.load(self.directory / "states.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.texts)

    def text_ids(self, texts: Iterable[str]) -> list[int]:
        """Row of each text in the cache (raises KeyError naming a text that is not cached)."""
        try:
            return [self._row_of_text[text] for text in texts]
        except KeyError as error:
            raise KeyError(f"text not in the cache at {self.directory}: {error.args[0][:80]!r}") from None

    def token_counts(self, text_ids: Sequence[int]) -> np.ndarray:
        """Number of cached tokens of each text `[len(text_ids)]`."""
        return np.diff(self.offsets)[np.asarray(text_ids, dtype=np.int64)]

    def token_states(self, text_id: int) -> np.ndarray:
        """`[num_tokens, text_hidden]` view into the memory-mapped states of one text."""
        return self.states[self.offsets[text_id] : self.offsets[text_id + 1]]

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        protomol_model: ProtoMolModel,
        tokenizer: PreTrainedTokenizerBase,
        cache_root: str | PathLike[str],
        max_length: int,
        batch_size: int = 64,
        dtype: str = "float16",
        show_progress: bool = True,
        device: str | torch.device | None = None,
    ) -> "TextFeatureCache":
        """Cache the token states that `protomol_model.encode_text` gives for the distinct `texts`, running the
        text model on `device` (default: where it is; it is moved back afterwards). Reuses an existing cache
        with the same fingerprint. The cache is written to a folder of its own and renamed into place when
        complete, so runs sharing a cache folder never read one that another run is still writing."""
        distinct = sorted(set(texts))
        text_model = protomol_model.text_model
        tokens = tokenizer(distinct, truncation=True, max_length=max_length)
        key = _fingerprint_text_model(text_model, tokens["input_ids"], max_length, dtype, distinct)
        directory = Path(cache_root) / "text_features" / key
        if (directory / "complete").exists():
            return cls(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(directory.parent)
        # Named after this process, so a later build can tell a killed build's copy from a running one.
        building = directory.parent / f"{key}{_BUILDING}{socket.gethostname()}-{os.getpid()}"
        building.mkdir()
        try:
            cls._write(
                building,
                distinct,
                tokens["input_ids"],
                protomol_model,
                tokenizer,
                batch_size,
                dtype,
                device,
                show_progress,
            )
            (building / "index.json").write_text(
                json.dumps({"texts": distinct, "max_length": max_length, "dtype": dtype})
            )
            (building / "complete").touch()
            try:
                building.rename(directory)
            except OSError:  # another run finished the same cache first: use that one
                if not (directory / "complete").exists():
                    raise
        finally:
            shutil.rmtree(building, ignore_errors=True)
        return cls(directory)

    @staticmethod
    def _write(
        directory: Path,
        distinct: list[str],
        token_ids: list[list[int]],
        protomol_model: ProtoMolModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int,
        dtype: str,
        device: str | torch.device | None,
        show_progress: bool,
    ) -> None:
        """Write `states.npy` (every text's token states, one after another) and `offsets.npy` into `directory`."""
        text_model = protomol_model.text_model
        lengths = np.array([len(ids) for ids in token_ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        states = np.lib.format.open_memmap(
            directory / "states.npy",
            mode="w+",
            dtype=_STORAGE_DTYPES[dtype],
            shape=(int(offsets[-1]), text_model.config.hidden_size),
        )
        # Batches of similar length waste little compute on padding.
        order = np.argsort(lengths, kind="stable")
        was_training = protomol_model.training
        home_device = next(text_model.parameters()).device
        device = torch.device(device) if device is not None else home_device
        protomol_model.eval()
        text_model.to(device)
        progress = tqdm(total=len(distinct), desc="Caching text features", unit="text", disable=not show_progress)
        try:
            with torch.no_grad():
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    # Padded on the right whatever the tokenizer's default, as the collator pads for training
                    # and prediction: a text's first `length` states are then its own.
                    batch = tokenizer.pad(
                        {"input_ids": [token_ids[row] for row in rows]}, padding_side="right", return_tensors="pt"
                    )
                    token_states = protomol_model.encode_text(
                        batch["input_ids"].to(device), batch["attention_mask"].to(device)
                    )
                    hidden = token_states.float().cpu().numpy()
                    for i, row in enumerate(rows):
                        states[offsets[row] : offsets[row + 1]] = hidden[i, : lengths[row]]
                    progress.update(len(rows))
        finally:
            progress.close()
            text_model.to(home_device)
            protomol_model.train(was_training)
        states.flush()
        del states
        np.save(directory / "offsets.npy", offsets)


class ProtoMolCachedTextCollator:
    """Collator for a dataset whose rows carry a `text_id`: swaps it for the cached token states
    (`text_embeds`), then batches with [`ProtoMolDataCollator`]."""

    def __init__(self, cache: TextFeatureCache, collator: ProtoMolDataCollator):
        self.cache = cache
        self.collator = collator

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Features with a `text_id` (their `input_ids` / `attention_mask` are dropped) -> the collated batch."""
        batch_features = []
        for feature in features:
            states = np.array(self.cache.token_states(int(feature["text_id"])))  # copy out of the read-only map
            rest = {k: v for k, v in feature.items() if k not in ("text_id", "input_ids", "attention_mask")}
            batch_features.append({**rest, "text_embeds": torch.from_numpy(states)})
        return self.collator(batch_features)
