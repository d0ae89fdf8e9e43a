"""The training run shared by `scripts/train.py` and `protomol train`.

CSV or bundled dataset -> validated table (each SMILES parsed once) -> split -> `datasets.map` featurization
(cached on disk) -> text-feature cache (frozen text model) -> ProtoMolTrainer -> best model, processor, split,
test predictions and results.json in the output directory; `ensemble_size` > 1 trains members side by side.
"""

import dataclasses
import json
import logging
import resource
import time
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from accelerate import PartialState
from transformers import AutoConfig, AutoTokenizer, EarlyStoppingCallback, TrainerCallback, set_seed

from ..data import SPLIT_PARTS, MolecularTable, Split, load_table, make_split, resolve_split_file, save_split
from ..ensemble import ENSEMBLE_FILE
from ..featurization_protomol import ATOM_FEATURE_VOCAB_SIZES, BOND_FEATURE_VOCAB_SIZES
from ..loading import resolve_text_model
from ..metrics import MoleculeNetMetric, main_metric, roc_auc_defined
from ..modeling_protomol import ProtoMolForMolecularPropertyPrediction
from ..processing_protomol import ProtoMolProcessor
from .arguments import DataArguments, ModelArguments, ProtoMolTrainingArguments
from .dataset import prepare_dataset
from .distributed import (
    cast_for_deepspeed_half_precision,
    cores_of_waiting_processes,
    repair_cpu_deepspeed_state,
    unpartitioned_construction,
)
from .trainer import ProtoMolTrainer, ProtoMolTrainingClock, build_compute_metrics

logger = logging.getLogger(__name__)

# Written next to the model: chemprop-style test predictions.
TEST_PREDICTIONS_FILE = "test_predictions.csv"


def _best_epoch(state, metric_name):
    for entry in state.log_history:
        if entry.get(f"eval_{metric_name}") == state.best_metric:
            return entry.get("epoch")
    return None


def _set_training_defaults(training_args: ProtoMolTrainingArguments, metric_name: str, greater_is_better: bool) -> Path:
    """Resolve `metric_for_best_model="auto"`; returns the output directory."""
    assert training_args.output_dir is not None  # required by ProtoMolTrainingArguments
    if training_args.metric_for_best_model == "auto":
        training_args.metric_for_best_model = metric_name
        training_args.greater_is_better = greater_is_better
    return Path(training_args.output_dir)


def check_split(table: MolecularTable, split: Split) -> None:
    """Raise if training on ``split`` could not work: an empty part, or (classification) validation or test rows
    in which no task has both classes, so ROC-AUC is undefined there: no epoch could be chosen as the best, or
    the model could not be scored."""
    sizes = {part: len(split[part]) for part in SPLIT_PARTS}
    described = f"train/valid/test hold {sizes['train']}/{sizes['valid']}/{sizes['test']} of {len(table)} usable rows"
    empty = [part for part, size in sizes.items() if size == 0]
    if empty:
        raise ValueError(
            f"the {' and '.join(empty)} {'part is' if len(empty) == 1 else 'parts are'} empty ({described}): add rows, "
            "or pass a --split_file whose three parts all hold rows"
        )
    if table.task_type != "classification":
        return
    for part, name, consequence in (
        ("valid", "validation", "no epoch could be chosen as the best"),
        ("test", "test", "the model could not be scored"),
    ):
        if not any(map(roc_auc_defined, table.labels[split[part]].T)):
            raise ValueError(
                f"no task has both classes among the {sizes[part]} {name} rows ({described}), so the {name} "
                f"ROC-AUC is undefined and {consequence}: add rows, or pass a --split_file whose parts hold both "
                "classes (the random split is stratified for one task only)"
            )


def run_training(
    model_args: ModelArguments, data_args: DataArguments, training_args: ProtoMolTrainingArguments
) -> dict:
    """Train ProtoMol as described by the three argument groups; returns the results written to results.json
    (to ensemble.json when `training_args.ensemble_size` > 1)."""
    if training_args.ensemble_size > 1:
        return _run_ensemble_training(model_args, data_args, training_args)
    if training_args.ensemble_size < 1:
        raise ValueError(f"--ensemble_size must be at least 1, got {training_args.ensemble_size}")
    start = time.perf_counter()
    repair_cpu_deepspeed_state()
    table = load_table(
        data_file=data_args.data_file,
        dataset_name=data_args.dataset_name,
        smiles_column=data_args.smiles_column,
        label_columns=data_args.label_columns,
        task_type=data_args.task_type,
        text_column=data_args.text_column,
        num_workers=data_args.preprocessing_num_workers,
    )
    logger.warning("Data: %s", table.report())
    split_file = resolve_split_file(data_args.split_file, table.dataset_name)
    split = make_split(table, split=data_args.split, split_file=split_file, seed=data_args.split_seed)
    check_split(table, split)
    split_name = Path(split_file).name.split(".")[0] if split_file else data_args.split
    metric_name, greater_is_better = main_metric(table.task_type)
    output_dir = _set_training_defaults(training_args, metric_name, greater_is_better)

    text_model_dir = resolve_text_model(model_args.text_model)
    tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
    positions = getattr(AutoConfig.from_pretrained(text_model_dir), "max_position_embeddings", None)
    if positions is not None and model_args.max_text_length > positions:
        raise ValueError(
            f"--max_text_length {model_args.max_text_length} is more tokens than the text model has positions "
            f"({positions}): give at most {positions}"
        )
    # The Trainer seeds only when it starts; the ProtoMol weights are initialized before, so seed here too
    # (same seed, data and options -> the same model).
    set_seed(training_args.seed)
    processor = ProtoMolProcessor(
        tokenizer,
        text_source="given" if table.texts is not None else model_args.text_source,
        max_text_length=model_args.max_text_length,
    )
    with unpartitioned_construction():
        model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(
            text_model_dir,
            problem_type=table.task_type,
            num_tasks=table.num_tasks,
            task_names=table.task_names,
            # Feature sizes come from the featurizer that makes the features (the config's defaults mirror them).
            atom_vocab_sizes=ATOM_FEATURE_VOCAB_SIZES,
            bond_vocab_sizes=BOND_FEATURE_VOCAB_SIZES,
            **model_args.config_kwargs(),
        )
        if table.task_type == "regression":
            model.set_target_statistics(table.labels[split["train"]])
        with (
            training_args.main_process_first(desc="featurization and text cache"),
            cores_of_waiting_processes(training_args),
        ):
            dataset, collator = prepare_dataset(table, processor, model, data_args, device=training_args.device)
    cast_for_deepspeed_half_precision(model, training_args)
    parts = {name: dataset.select(indices) for name, indices in split.items()}

    callbacks: list[TrainerCallback] = [ProtoMolTrainingClock()]
    if data_args.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))
    trainer = ProtoMolTrainer(
        model=model,
        args=training_args,
        data_collator=collator,
        train_dataset=parts["train"],
        eval_dataset=parts["valid"],
        processing_class=processor,
        compute_metrics=build_compute_metrics(table.task_type, table.task_names),
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    # A resumed run's clock is the one the Trainer rebuilt from the checkpoint, not the one passed in.
    clock = cast(ProtoMolTrainingClock, trainer.pop_callback(ProtoMolTrainingClock))
    train_wall_s = clock.elapsed_s
    # test_predictions.csv pairs predictions with rows by position: evaluate in dataset order even if
    # training grouped batches by length (that sampler also shuffles evaluation).
    trainer.args.train_sampling_strategy = "random"
    # Early stopping has done its job; on the "valid_"-prefixed final evaluation it would only warn that it
    # cannot find "eval_<metric>".
    trainer.remove_callback(EarlyStoppingCallback)
    valid_metrics = trainer.evaluate(parts["valid"], metric_key_prefix="valid")
    test_output = trainer.predict(parts["test"], metric_key_prefix="test")

    trainer.save_model(str(output_dir))
    trainer.save_state()
    results = {
        "dataset": table.dataset_name or Path(table.data_file).name,
        "split": split_name,
        "task_type": table.task_type,
        "metric": metric_name,
        "valid": _strip_prefix(valid_metrics, "valid_"),
        "test": _strip_prefix(test_output.metrics, "test_"),
        "best_epoch": _best_epoch(trainer.state, metric_name),
        "epochs_run": round(trainer.state.epoch or 0.0, 2),
        "train_wall_s": round(train_wall_s, 2),
        "resumed_from": training_args.resume_from_checkpoint,
        "resumed_train_s": round(clock.resumed_s, 2),
        "total_wall_s": round(time.perf_counter() - start, 2),
        "peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "num_molecules": {name: len(indices) for name, indices in split.items()},
        "excluded_rows": [vars(row) for row in table.invalid_rows],
    }
    if trainer.is_world_process_zero():
        processor.save_pretrained(output_dir)
        save_split(split, table, output_dir / "split.json", split_name=split_name)
        _save_test_predictions(test_output.predictions, table, split["test"], output_dir / TEST_PREDICTIONS_FILE)
        (output_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _strip_prefix(metrics, prefix):
    return {key[len(prefix) :] if key.startswith(prefix) else key: value for key, value in metrics.items()}


def _save_test_predictions(logits, table: MolecularTable, test_indices, path: Path) -> None:
    """The test molecules' predictions (probabilities or values) with their CSV row, SMILES and labels."""
    if isinstance(logits, tuple):
        logits = logits[0]
    values = ProtoMolProcessor.post_process(np.asarray(logits, dtype=np.float64), table.task_type)
    test_indices = np.asarray(test_indices, dtype=np.int64)
    columns: dict[str, object] = {
        "row": table.source_rows[test_indices],
        "smiles": [table.smiles[i] for i in test_indices],
    }
    for task, name in enumerate(table.task_names):
        columns[f"{name}_label"] = table.labels[test_indices, task]
        columns[f"{name}_predicted"] = values[:, task]
    pd.DataFrame(columns).to_csv(path, index=False)


def _run_ensemble_training(
    model_args: ModelArguments, data_args: DataArguments, training_args: ProtoMolTrainingArguments
) -> dict:
    """Train `ensemble_size` members (seeds seed, seed+1, ...) on one split; score their averaged test predictions."""
    assert training_args.output_dir is not None  # required by ProtoMolTrainingArguments
    output_dir = Path(training_args.output_dir)
    members = []
    for member in range(training_args.ensemble_size):
        member_args = dataclasses.replace(
            training_args,
            output_dir=str(output_dir / f"member_{member}"),
            seed=training_args.seed + member,
            ensemble_size=1,
        )
        logger.warning("Ensemble member %d of %d (seed %d)", member + 1, training_args.ensemble_size, member_args.seed)
        members.append(run_training(model_args, data_args, member_args))
    PartialState().wait_for_everyone()  # the main process has written every member's test predictions
    first = members[0]
    metric = first["metric"]
    tables = [pd.read_csv(output_dir / f"member_{m}" / TEST_PREDICTIONS_FILE) for m in range(len(members))]
    task_names = [column[: -len("_predicted")] for column in tables[0].columns if column.endswith("_predicted")]
    predicted = np.stack([t[[f"{name}_predicted" for name in task_names]].to_numpy() for t in tables]).mean(axis=0)
    labels = tables[0][[f"{name}_label" for name in task_names]].to_numpy(dtype=np.float64)
    scores = MoleculeNetMetric(task_type=first["task_type"], task_names=task_names).compute(
        predictions=predicted, references=labels
    )
    member_scores = [m["test"][metric] for m in members]
    results = {
        **{key: first[key] for key in ("dataset", "split", "task_type", "metric", "num_molecules", "excluded_rows")},
        "ensemble_size": len(members),
        "members": [f"member_{m}" for m in range(len(members))],
        "seeds": [training_args.seed + m for m in range(len(members))],
        "test": scores,
        "member_test": {
            "values": member_scores,
            "mean": float(np.mean(member_scores)),
            "std": float(np.std(member_scores)),
        },
        "member_valid": [m["valid"][metric] for m in members],
    }
    if training_args.process_index == 0:
        (output_dir / ENSEMBLE_FILE).write_text(json.dumps(results, indent=2))
    return results
