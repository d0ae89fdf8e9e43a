"""MoleculeNet metrics: missing labels and single-class tasks skipped, errors in target units."""

import math

import numpy as np
import pytest

from protomol_hf.metrics import MoleculeNetMetric, main_metric

NAN = float("nan")


def test_roc_auc_skips_missing_labels_and_single_class_tasks():
    metric = MoleculeNetMetric("classification", task_names=["ranked", "one_class", "with_gaps"])
    predictions = np.array([[0.1, 0.5, 0.9], [0.8, 0.5, 0.2], [0.3, 0.5, 0.7], [0.9, 0.5, 0.1]])
    references = np.array([[0, 1, NAN], [1, 1, 0], [0, 1, 1], [1, NAN, 0]])
    scores = metric.compute(predictions=predictions, references=references)
    assert scores["num_scored_tasks"] == 2 and "roc_auc_one_class" not in scores
    assert scores["roc_auc_ranked"] == 1.0 and scores["roc_auc_with_gaps"] == 1.0
    assert scores["roc_auc"] == 1.0


def test_regression_errors_are_per_task_means_over_present_labels():
    metric = MoleculeNetMetric("regression", task_names=["a", "b"])
    scores = metric.compute(
        predictions=np.array([[1.0, 0.0], [3.0, 2.0]]), references=np.array([[2.0, NAN], [1.0, 0.0]])
    )
    assert math.isclose(scores["rmse_a"], math.sqrt((1 + 4) / 2)) and math.isclose(scores["rmse_b"], 2.0)
    assert math.isclose(scores["rmse"], (math.sqrt(2.5) + 2.0) / 2)
    assert math.isclose(scores["mae"], (1.5 + 2.0) / 2)


def test_main_metric_and_bad_input():
    assert main_metric("classification") == ("roc_auc", True)
    assert main_metric("regression") == ("rmse", False)
    with pytest.raises(ValueError, match="task_type"):
        MoleculeNetMetric("ranking")
    with pytest.raises(ValueError, match="shape"):
        MoleculeNetMetric("regression").compute(predictions=np.zeros((2, 1)), references=np.zeros((2, 2)))
