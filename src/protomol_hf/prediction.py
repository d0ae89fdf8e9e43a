"""Batch prediction and embedding with a trained ProtoMol, row by row robust to invalid input.

Each row is checked and featurized on its own first, so an invalid SMILES (or an empty text) marks only
its own row as failed; the valid rows then go through the model in batches. Results stay aligned with
the input: rows that failed hold NaN and the reason in `errors`.

    model = AutoModel.from_pretrained(path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    predictions, errors = predict_smiles(model, processor, ["CCO", "not a smiles"])
"""

import math
import multiprocessing
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from .featurization_protomol import not_a_string_problem
from .modeling_protomol import ProtoMolForMolecularPropertyPrediction
from .processing_protomol import ProtoMolProcessor

INVALID_ROW_POLICIES = ("skip", "error")
NON_FINITE_REASON = "the model's output is not finite (NaN or inf)"
# Rows per task of a featurization worker: large enough that sending the features back costs little.
PARALLEL_CHUNK_SIZE = 256
# Arrays returned by `embed_smiles`, each `[num_rows, width]`.
EMBEDDING_NAMES = (
    "graph_embeds",
    "text_embeds",
    "fused_embeds",
    "graph_prototype_similarities",
    "text_prototype_similarities",
)


class _ModelOutputs(Protocol):
    """The fields read from a ProtoMol forward pass (of this package's class or of a checkpoint's own copy)."""

    logits: torch.Tensor
    graph_embeds: torch.Tensor
    text_pooled_embeds: torch.Tensor
    fused_embeds: torch.Tensor
    graph_prototype_similarities: torch.Tensor
    text_prototype_similarities: torch.Tensor


class InvalidRowError(ValueError):
    """A row that cannot be predicted, raised at the first such row when invalid rows are not skipped.

    Attributes: `row` (0-based position in the input) and `reason`.
    """

    def __init__(self, row: int, reason: str):
        self.row = row
        self.reason = reason
        super().__init__(f"row {row}: {reason}")


def _text_problem(text) -> str | None:
    """Why `text` cannot describe a molecule, or None when it can."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "text is missing"
    if not isinstance(text, str):
        return f"text is not a string ({type(text).__name__})"
    if not text.strip():
        return "text is empty"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate, which the tokenizer cannot take
        return f"text is not valid Unicode ({error.reason} at position {error.start})"
    return None


def _featurize_row(processor: ProtoMolProcessor, smiles, text, text_given: bool) -> tuple[dict | None, str | None]:
    """Features of one molecule, or None and the reason it cannot be featurized."""
    reason = _text_problem(text) if text_given else None
    if reason is not None:
        return None, reason
    # A missing value or a number is one row's problem, not the batch's (the processor takes it for a list).
    smiles_problem = not_a_string_problem(smiles)
    if smiles_problem is not None:
        return None, f"invalid SMILES: {smiles_problem}"
    try:
        # One SMILES string gives the features of one molecule.
        return cast(dict[str, Any], processor(smiles=smiles, text=text)), None
    except ValueError as error:  # ProtoMolFeaturizationError, possibly the checkpoint's own copy
        return None, f"invalid SMILES: {getattr(error, 'reason', error)}"


# The processor of the worker processes of `featurize_rows`, set once per worker by `_start_worker`.
_worker_processor: ProtoMolProcessor | None = None


def _start_worker(processor: ProtoMolProcessor) -> None:
    global _worker_processor
    _worker_processor = processor


def _featurize_chunk(chunk: tuple[list, list | None]) -> list[tuple[dict | None, str | None]]:
    """`_featurize_row` over a chunk of (SMILES, texts or None), in a worker process."""
    smiles, texts = chunk
    # set by `_start_worker` before any chunk
    return list(_featurize_each(cast(ProtoMolProcessor, _worker_processor), smiles, texts))


def _featurize_each(processor, smiles, texts) -> Iterator[tuple[dict | None, str | None]]:
    """`_featurize_row` over the rows of `smiles` (and `texts`, or None when no texts are given), in order."""
    for row, molecule in enumerate(smiles):
        yield _featurize_row(processor, molecule, texts[row] if texts is not None else None, texts is not None)


def _featurize_in_workers(processor, smiles, texts, num_workers, progress) -> Iterator[tuple[dict | None, str | None]]:
    """`_featurize_row` over all rows in `num_workers` processes, yielded in row order."""
    starts = range(0, len(smiles), PARALLEL_CHUNK_SIZE)
    chunks = [
        (
            list(smiles[i : i + PARALLEL_CHUNK_SIZE]),
            list(texts[i : i + PARALLEL_CHUNK_SIZE]) if texts is not None else None,
        )
        for i in starts
    ]
    # fork: the workers inherit the processor (also a checkpoint's own class, which spawn could not import).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with (
        ProcessPoolExecutor(num_workers, multiprocessing.get_context(method), _start_worker, (processor,)) as pool,
        tqdm(total=len(smiles), desc="Featurizing", unit="mol", disable=not progress) as bar,
    ):
        for results in pool.map(_featurize_chunk, chunks):
            bar.update(len(results))
            yield from results


def featurize_rows(
    processor: ProtoMolProcessor,
    smiles: Sequence,
    texts: Sequence | None = None,
    invalid: str = "skip",
    progress: bool = False,
    num_workers: int = 1,
) -> tuple[list[dict | None], list[str | None]]:
    """Featurize each molecule (and its text) on its own with `processor`, in `num_workers` processes.

    Returns `(features, errors)` aligned with `smiles`: a row that fails has features None and its reason
    in `errors` (None for valid rows). With `invalid="error"` the first failing row raises
    `InvalidRowError` instead. Featurization (RDKit, the template description, tokens) runs on the CPU and
    limits prediction on a GPU; with `num_workers > 1` inputs of more than one chunk
    (`PARALLEL_CHUNK_SIZE` rows) are spread over that many processes.
    """
    if invalid not in INVALID_ROW_POLICIES:
        raise ValueError(f"invalid={invalid!r} is not supported; choose one of {INVALID_ROW_POLICIES}")
    if num_workers < 1:
        raise ValueError(f"num_workers must be at least 1, got {num_workers}")
    if texts is not None and len(texts) != len(smiles):
        raise ValueError(f"got {len(texts)} texts for {len(smiles)} SMILES")
    if texts is None and getattr(processor, "text_source", None) == "given":
        raise ValueError(
            "this model was trained with texts from a data column: give a text per molecule (--text_column)"
        )
    if num_workers > 1 and len(smiles) > PARALLEL_CHUNK_SIZE:
        results = _featurize_in_workers(processor, smiles, texts, num_workers, progress)
    else:
        results = tqdm(
            _featurize_each(processor, smiles, texts),
            total=len(smiles),
            desc="Featurizing",
            unit="mol",
            disable=not progress,
        )
    features, errors = [], []
    for row, (item, reason) in enumerate(results):
        if reason is not None and invalid == "error":
            raise InvalidRowError(row, reason)
        features.append(item)
        errors.append(reason)
    return features, errors


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def length_sorted_batches(features: Sequence[dict | None], batch_size: int) -> list[list[int]]:
    """Rows of the featurized molecules (None = skipped) grouped into batches of similar description length.

    Every batch is padded to its longest description, so batching rows in input order wastes about a fifth
    of the text model's work on padding; sorting by token count (then atom count) removes most of it.
    """
    sizes = {row: (len(item["input_ids"]), len(item["atom_features"])) for row, item in enumerate(features) if item}
    valid_rows = sorted(sizes, key=sizes.__getitem__)
    return [valid_rows[start : start + batch_size] for start in range(0, len(valid_rows), batch_size)]


@torch.no_grad()
def _model_outputs(model, processor, features, batch_size, progress) -> Iterator[tuple[list[int], _ModelOutputs]]:
    """Run `model` over the featurized rows (None = skipped) in batches; yields (row indices, outputs)."""
    model.eval()
    for rows in tqdm(
        length_sorted_batches(features, batch_size), desc="Running model", unit="batch", disable=not progress
    ):
        batch = processor.collator([features[row] for row in rows])
        yield rows, model(**{name: tensor.to(model.device) for name, tensor in batch.items()})


def predict_smiles(
    model: ProtoMolForMolecularPropertyPrediction,
    processor: ProtoMolProcessor,
    smiles: Sequence,
    texts: Sequence | None = None,
    batch_size: int = 64,
    invalid: str = "skip",
    progress: bool = False,
    num_workers: int = 1,
) -> tuple[np.ndarray, list[str | None]]:
    """Predict every task for every molecule.

    Returns `(predictions, errors)`: `predictions` is float64 `[len(smiles), num_tasks]` (probabilities
    for classification, values in the target's units for regression) with NaN rows where `errors` names
    the reason the molecule could not be predicted. `texts` (one per molecule) replace the model's own
    descriptions; `invalid="error"` raises `InvalidRowError` at the first invalid row; `num_workers` processes
    featurize (see `featurize_rows`). `model` and
    `processor` are loaded from one checkpoint (with remote code they are the checkpoint's own classes).
    """
    check_batch_size(batch_size)
    features, errors = featurize_rows(processor, smiles, texts, invalid, progress, num_workers)
    predictions = model_predictions(model, processor, features, batch_size, progress)
    mark_non_finite_rows([predictions], errors, invalid)
    return predictions, errors


def mark_non_finite_rows(outputs: Sequence[np.ndarray], errors: list[str | None], invalid: str) -> None:
    """Rows the model ran on whose outputs (arrays `[num_rows, ...]`) are not all finite become errors and NaN,
    as an invalid input row does (with `invalid="error"`, `InvalidRowError` at the first). When no row comes out
    finite the model itself is broken (NaN weights, a zero temperature): ValueError for the whole call."""
    ran = np.array([error is None for error in errors], dtype=bool)
    finite = np.ones(len(errors), dtype=bool)
    for values in outputs:
        finite &= np.isfinite(values).all(axis=tuple(range(1, values.ndim)))
    broken = ran & ~finite
    if not broken.any():
        return
    if broken.sum() == ran.sum():
        raise ValueError(
            f"the model's output is not finite (NaN or inf) for any of the {int(ran.sum())} molecules it ran on: "
            "its weights or config are broken"
        )
    if invalid == "error":
        raise InvalidRowError(int(np.flatnonzero(broken)[0]), NON_FINITE_REASON)
    for row in np.flatnonzero(broken):
        errors[row] = NON_FINITE_REASON
    for values in outputs:
        values[broken] = np.nan


def model_predictions(model, processor, features, batch_size: int, progress: bool = False) -> np.ndarray:
    """float64 `[len(features), num_tasks]` predictions of `model` for the featurized rows, NaN for skipped ones."""
    predictions = np.full((len(features), model.config.num_tasks), np.nan)
    for rows, outputs in _model_outputs(model, processor, features, batch_size, progress):
        values = ProtoMolProcessor.post_process(outputs.logits.float(), model.config.problem_type)
        predictions[rows] = values.cpu().numpy()
    return predictions


def embed_smiles(
    model: ProtoMolForMolecularPropertyPrediction,
    processor: ProtoMolProcessor,
    smiles: Sequence,
    texts: Sequence | None = None,
    batch_size: int = 64,
    invalid: str = "skip",
    progress: bool = False,
    num_workers: int = 1,
) -> tuple[dict[str, np.ndarray], list[str | None]]:
    """The learned representations of every molecule.

    Returns `(embeddings, errors)`: `embeddings` maps each of `EMBEDDING_NAMES` to a float32
    `[len(smiles), width]` array (graph and text summaries `[hidden]`, fused `[2 * hidden]`, prototype
    similarities flattened to `[num_tasks * num_prototypes_per_task]`), NaN in rows that failed. Other
    arguments as in `predict_smiles`.
    """
    check_batch_size(batch_size)
    features, errors = featurize_rows(processor, smiles, texts, invalid, progress, num_workers)
    config = model.config
    widths = {
        "graph_embeds": config.hidden_size,
        "text_embeds": config.hidden_size,
        "fused_embeds": 2 * config.hidden_size,
        "graph_prototype_similarities": config.num_tasks * config.num_prototypes_per_task,
        "text_prototype_similarities": config.num_tasks * config.num_prototypes_per_task,
    }
    embeddings = {name: np.full((len(features), widths[name]), np.nan, dtype=np.float32) for name in EMBEDDING_NAMES}
    for rows, outputs in _model_outputs(model, processor, features, batch_size, progress):
        values = {
            "graph_embeds": outputs.graph_embeds,
            "text_embeds": outputs.text_pooled_embeds,
            "fused_embeds": outputs.fused_embeds,
            "graph_prototype_similarities": outputs.graph_prototype_similarities,
            "text_prototype_similarities": outputs.text_prototype_similarities,
        }
        for name, tensor in values.items():
            embeddings[name][rows] = tensor.float().reshape(len(rows), -1).cpu().numpy()
    mark_non_finite_rows(list(embeddings.values()), errors, invalid)
    return embeddings, errors


__all__ = [
    "EMBEDDING_NAMES",
    "INVALID_ROW_POLICIES",
    "InvalidRowError",
    "check_batch_size",
    "embed_smiles",
    "featurize_rows",
    "length_sorted_batches",
    "mark_non_finite_rows",
    "model_predictions",
    "predict_smiles",
]
