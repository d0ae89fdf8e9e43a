"""MoleculeNet metrics as an `evaluate` module that works offline.

`evaluate.load("roc_auc")` fetches code from the Hub; this module is shipped with the package and
implements the benchmark protocol: mean ROC-AUC over tasks skipping missing labels and tasks whose
labels hold a single class; RMSE and MAE in the target's own units, per task and averaged.
"""

from collections.abc import Sequence
from typing import Any

import datasets
import evaluate
import numpy as np
from sklearn.metrics import roc_auc_score


class MoleculeNetMetric(evaluate.Metric):
    """`compute(predictions=[n, tasks], references=[n, tasks])`; NaN references are missing labels.

    For classification, predictions are logits or probabilities (ROC-AUC only needs their order).
    """

    def __init__(self, task_type: str = "classification", task_names: Sequence[str] | None = None, **kwargs: Any):
        if task_type not in ("classification", "regression"):
            raise ValueError(f"task_type must be 'classification' or 'regression', got {task_type!r}")
        self.task_type = task_type
        self.task_names = list(task_names) if task_names is not None else None
        super().__init__(**kwargs)

    def _info(self):
        return evaluate.MetricInfo(
            description="MoleculeNet metrics with missing labels: ROC-AUC (classification), RMSE/MAE (regression).",
            citation="Wu et al., MoleculeNet: a benchmark for molecular machine learning, Chem. Sci. 2018.",
            inputs_description="predictions and references: float arrays [num_molecules, num_tasks], NaN = missing.",
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, predictions, references):
        predictions = np.asarray(predictions, dtype=np.float64)
        references = np.asarray(references, dtype=np.float64)
        if predictions.shape != references.shape:
            raise ValueError(f"predictions {predictions.shape} and references {references.shape} differ in shape")
        names = self.task_names or [f"task_{i}" for i in range(references.shape[1])]
        if self.task_type == "classification":
            return _classification_scores(predictions, references, names)
        return _regression_scores(predictions, references, names)


def roc_auc_defined(labels: np.ndarray) -> bool:
    """Whether one task's labels `[num_rows]` (NaN = missing) hold both classes: ROC-AUC needs two."""
    return len(np.unique(labels[~np.isnan(labels)])) == 2


def _classification_scores(predictions, references, names):
    per_task = {}
    for task, name in enumerate(names):
        if not roc_auc_defined(references[:, task]):
            continue
        present = ~np.isnan(references[:, task])
        per_task[name] = float(roc_auc_score(references[present, task], predictions[present, task]))
    scores = {"roc_auc": float(np.mean(list(per_task.values()))) if per_task else float("nan")}
    scores["num_scored_tasks"] = len(per_task)
    if len(names) > 1:
        scores.update({f"roc_auc_{name}": value for name, value in per_task.items()})
    return scores


def _regression_scores(predictions, references, names):
    rmse, mae = {}, {}
    for task, name in enumerate(names):
        present = ~np.isnan(references[:, task])
        if not present.any():
            continue
        errors = predictions[present, task] - references[present, task]
        rmse[name] = float(np.sqrt(np.mean(errors**2)))
        mae[name] = float(np.mean(np.abs(errors)))
    scores = {
        "rmse": float(np.mean(list(rmse.values()))) if rmse else float("nan"),
        "mae": float(np.mean(list(mae.values()))) if mae else float("nan"),
    }
    if len(names) > 1:
        scores.update({f"rmse_{name}": value for name, value in rmse.items()})
    return scores


def main_metric(task_type: str) -> tuple[str, bool]:
    """The benchmark's metric for a task type and whether greater is better."""
    name = "roc_auc" if task_type == "classification" else "rmse"
    return name, greater_is_better(name)


def greater_is_better(metric_name: str) -> bool:
    """Whether a larger value is better for a metric reported here (with or without the Trainer's "eval_"
    prefix): ROC-AUC yes; errors (RMSE, MAE, also per task) and losses no."""
    name = metric_name.removeprefix("eval_")
    # By the metric first: a per-task score is named after its task, which may end in "loss" (roc_auc_weight_loss).
    if name.startswith("roc_auc"):
        return True
    return not (name.startswith(("rmse", "mae")) or name.endswith("loss"))
