"""ProtoMolTrainer: the transformers Trainer with ProtoMol's loss components logged; a training clock that
survives resuming from a checkpoint."""

import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import EvalPrediction, Trainer, TrainerCallback
from transformers.trainer_callback import ExportableState

from ..metrics import MoleculeNetMetric
from ..modeling_protomol import ProtoMolPropertyPredictionOutput
from ..processing_protomol import ProtoMolProcessor

# The loss terms are the `*_loss` fields of the model's output: a new term is logged without a change here.
LOSS_COMPONENTS = tuple(
    field.name for field in dataclasses.fields(ProtoMolPropertyPredictionOutput) if field.name.endswith("_loss")
)


class ProtoMolTrainer(Trainer):
    """A `Trainer` whose logs carry each ProtoMol loss term averaged over the logging window.

    The model computes every term in `forward` (required under ZeRO-3); this class only reads them.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._component_sums = defaultdict(float)
        self._component_steps = 0

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The loss `forward` returns (with the outputs when `return_outputs`); records its components when training."""
        outputs = model(**inputs)
        if model.training:
            if not torch.isfinite(outputs.loss):
                self._stop_on_non_finite_loss(outputs)
            for name in LOSS_COMPONENTS:
                self._component_sums[name] += outputs[name].detach()
            self._component_steps += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def _stop_on_non_finite_loss(self, outputs: Any) -> None:
        """Training cannot recover from a NaN/inf loss: stop with the step and the term that broke."""
        components = ", ".join(f"{name}={outputs[name].item():.4g}" for name in LOSS_COMPONENTS)
        raise FloatingPointError(
            f"step {self.state.global_step + 1}: the training loss is {outputs.loss.item()} ({components}). "
            "Lower --learning_rate, check the labels for extreme values, or resume from the last checkpoint."
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """`Trainer.log`, with each loss component's mean over the steps since the last training log added."""
        if "loss" in logs and self._component_steps:
            for name in LOSS_COMPONENTS:
                window_mean = self._component_sums[name] / self._component_steps
                logs[name] = round(self.accelerator.reduce(window_mean, reduction="mean").item(), 4)
            self._component_sums.clear()
            self._component_steps = 0
        super().log(logs, start_time)


class ProtoMolTrainingClock(TrainerCallback, ExportableState):
    """Seconds spent in `Trainer.train`, counting the training before the checkpoint a run resumed from.

    Each checkpoint's trainer_state.json stores the clock; the Trainer restores it on `resume_from_checkpoint`
    (with `restore_callback_states_from_checkpoint`), so an interrupted run's time up to its last checkpoint is kept
    and the work lost after it is not counted twice.
    """

    def __init__(self, resumed_s: float = 0.0):
        self.resumed_s = resumed_s  # training seconds before the checkpoint this run resumed from
        self._started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        """Training seconds so far, resumed ones included (the Trainer also asks before training starts)."""
        if self._started is None:
            return self.resumed_s
        return self.resumed_s + time.perf_counter() - self._started

    def state(self) -> dict:
        return {"args": {"resumed_s": self.elapsed_s}}


def build_compute_metrics(
    task_type: str, task_names: Sequence[str] | None
) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` for the Trainer: MoleculeNet metrics on (logits, labels) with NaN = missing."""
    metric = MoleculeNetMetric(task_type=task_type, task_names=task_names)

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = ProtoMolProcessor.post_process(np.asarray(predictions, dtype=np.float64), task_type)
        return metric.compute(
            predictions=predictions, references=np.asarray(eval_prediction.label_ids, dtype=np.float64)
        )

    return compute_metrics
