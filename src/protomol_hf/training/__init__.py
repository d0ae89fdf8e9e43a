"""Training: argument groups, the featurized dataset, DeepSpeed/multi-process shims, the Trainer and the run."""

from .arguments import DEFAULT_CACHE_DIR, DataArguments, ModelArguments, ProtoMolTrainingArguments
from .pipeline import TEST_PREDICTIONS_FILE, check_split, run_training
from .trainer import ProtoMolTrainer, ProtoMolTrainingClock, build_compute_metrics

__all__ = [
    "DEFAULT_CACHE_DIR",
    "TEST_PREDICTIONS_FILE",
    "DataArguments",
    "ModelArguments",
    "ProtoMolTrainer",
    "ProtoMolTrainingArguments",
    "ProtoMolTrainingClock",
    "build_compute_metrics",
    "check_split",
    "run_training",
]
