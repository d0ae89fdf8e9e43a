"""Ensembles: the members' folder list that training writes (ensemble.json), the check that members predict
the same tasks in the same units, and their averaged predictions with the spread between members."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .modeling_protomol import ProtoMolForMolecularPropertyPrediction
from .prediction import check_batch_size, featurize_rows, mark_non_finite_rows, model_predictions
from .processing_protomol import ProtoMolProcessor

# Written by training into the output folder of an ensemble: the member folders, seeds and scores.
ENSEMBLE_FILE = "ensemble.json"


def ensemble_member_dirs(folder: Path) -> list[Path]:
    """The member folders listed in `folder`'s ensemble file; ValueError naming the file when it is broken."""
    try:
        return [folder / name for name in json.loads((folder / ENSEMBLE_FILE).read_text())["members"]]
    except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise ValueError(f"{folder / ENSEMBLE_FILE} is not an ensemble file written by training: {error!r}") from None


def check_members_agree(models: Sequence, member_dirs: Sequence[Path]) -> None:
    """Averaging is only meaningful over members that predict the same tasks in the same units: raise a
    ValueError naming the first member that differs from the first one."""
    predicts = [(model.config.problem_type, model.config.task_names) for model in models]
    for member_dir, member_predicts in zip(member_dirs, predicts, strict=True):
        if member_predicts != predicts[0]:
            raise ValueError(
                f"{member_dir} predicts {member_predicts[0]} of {member_predicts[1]}, but {member_dirs[0]} "
                f"{predicts[0][0]} of {predicts[0][1]}: an ensemble's members must predict the same tasks"
            )


def predict_smiles_ensemble(
    models: Sequence[ProtoMolForMolecularPropertyPrediction],
    processor: ProtoMolProcessor,
    smiles: Sequence,
    texts: Sequence | None = None,
    batch_size: int = 64,
    invalid: str = "skip",
    progress: bool = False,
    num_workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Predict with every member of an ensemble (trained alike, differing in seed) and summarize.

    Returns `(mean, std, errors)`: the mean and the standard deviation over members of each prediction,
    both `[len(smiles), num_tasks]`, NaN where `errors` names why a row failed. Molecules are featurized
    once with `processor` (the members share it). Other arguments as in `predict_smiles`.
    """
    check_batch_size(batch_size)
    if not models:
        raise ValueError("an ensemble needs at least one model")
    features, errors = featurize_rows(processor, smiles, texts, invalid, progress, num_workers)
    per_member = np.stack([model_predictions(model, processor, features, batch_size, progress) for model in models])
    # A row with a non-finite prediction of any member has no mean to report.
    mark_non_finite_rows([per_member.transpose(1, 0, 2)], errors, invalid)
    return per_member.mean(axis=0), per_member.std(axis=0), errors


__all__ = ["ENSEMBLE_FILE", "check_members_agree", "ensemble_member_dirs", "predict_smiles_ensemble"]
