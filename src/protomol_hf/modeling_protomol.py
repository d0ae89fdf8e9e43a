"""ProtoMol: prototype-guided multimodal (molecular graph + text) property prediction.

Leaf modules first (encoders, one fusion layer, the prototype space), then the `PreTrainedModel`,
the base model and the property-prediction head. The method and its named decisions are
described in docs/METHOD.md. This file is copied into Hub checkpoints: it imports only its
sibling configuration file and third-party packages (never RDKit).
"""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch_geometric.nn import GINEConv, global_add_pool, global_max_pool, global_mean_pool
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_protomol import ProtoMolConfig

_READOUT_FUNCTIONS = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}
# Every attention kernel but cuDNN's. For masked bf16 attention on Hopper GPUs torch tries cuDNN first, which
# builds an execution plan for each new (batch, length) shape; molecule batches rarely repeat a shape, and on
# an H200 a bf16 training step took 314 ms instead of 61 ms in float32 (benchmarks.speed.training_profile).
ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@contextmanager
def _without_mha_fast_path() -> Iterator[None]:
    """Turn off `nn.TransformerEncoderLayer`'s inference fast path (a process-wide flag, restored on exit): it
    computes masked attention with a separate softmax, while the regular path calls the fused attention
    kernels. On CPU the model's forward pass (cached text states, batch 64) takes a fifth less time."""
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


# transformers logs its table of missing, unexpected and re-initialized weights here while loading.
_TRANSFORMERS_LOADING_LOGGER = "transformers.modeling_utils"
# Training-set statistics of a regression model, buffers kept in float32.
_REGRESSION_STATISTICS = ("target_mean", "target_std", "class_boundaries")


class _HeldLogRecords(logging.Filter):
    """Holds back a logger's records until `release()` emits them; the ones never released are dropped."""

    def __init__(self, logger: logging.Logger):
        super().__init__()
        self.logger = logger
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def release(self) -> None:
        for record in self.records:
            self.logger.handle(record)
        self.records.clear()


@contextmanager
def _held_log_records(logger_name: str) -> Iterator[_HeldLogRecords]:
    """Hold the records of `logger_name` while the block runs: a load that is then refused with a clear error
    should not first print transformers' report that it re-initialized the weights."""
    logger = logging.getLogger(logger_name)
    held = _HeldLogRecords(logger)
    logger.addFilter(held)
    failed = True
    try:
        yield held
        failed = False
    finally:
        logger.removeFilter(held)
        if failed:  # transformers' own error: its report helps to explain it
            held.release()


@dataclass
class ProtoMolModelOutput(ModelOutput):
    """Outputs of [`ProtoMolModel`].

    graph_embeds: `[batch, hidden]` graph summary, mean of the per-layer readouts.
    text_pooled_embeds: `[batch, hidden]` text summary, mean of the per-layer masked token means.
    fused_embeds: `[batch, 2 * hidden]` concatenation of both summaries.
    graph_prototype_similarities / text_prototype_similarities: `[batch, num_tasks, num_prototypes_per_task]`
        cosine similarities of each modality's projected summary to every prototype.
    graph_hidden_states: per layer, atom states `[num_atoms, hidden]` (with `output_hidden_states`).
    text_hidden_states: per layer, token states `[batch, seq_len, hidden]` (with `output_hidden_states`).
    cross_attentions: per fused layer, a pair (atoms->tokens `[batch, max_atoms, seq_len]`,
        tokens->atoms `[batch, seq_len, max_atoms]`) of head-averaged weights (with `output_attentions`).
    """

    graph_embeds: torch.Tensor | None = None
    text_pooled_embeds: torch.Tensor | None = None
    fused_embeds: torch.Tensor | None = None
    graph_prototype_similarities: torch.Tensor | None = None
    text_prototype_similarities: torch.Tensor | None = None
    graph_hidden_states: tuple[torch.Tensor, ...] | None = None
    text_hidden_states: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None


@dataclass
class ProtoMolPropertyPredictionOutput(ModelOutput):
    """Outputs of [`ProtoMolForMolecularPropertyPrediction`].

    loss: scalar total `prediction_loss + alignment_loss_weight * alignment_loss + contrastive_loss_weight *
        contrastive_loss` (when `labels` are given).
    logits: `[batch, num_tasks]` classification logits, or regression predictions in the target's units.
    The other fields are the loss components and the fields of [`ProtoMolModelOutput`].
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    prediction_loss: torch.Tensor | None = None
    alignment_loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None
    graph_embeds: torch.Tensor | None = None
    text_pooled_embeds: torch.Tensor | None = None
    fused_embeds: torch.Tensor | None = None
    graph_prototype_similarities: torch.Tensor | None = None
    text_prototype_similarities: torch.Tensor | None = None
    graph_hidden_states: tuple[torch.Tensor, ...] | None = None
    text_hidden_states: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None


class ProtoMolCategoricalEncoder(nn.Module):
    """Sum of one embedding per categorical feature (OGB style): `[num_items, num_features]` -> `[num_items, hidden]`."""

    def __init__(self, vocab_sizes: Sequence[int], hidden_size: int):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(size, hidden_size) for size in vocab_sizes)

    def forward(self, features: torch.LongTensor) -> torch.Tensor:
        """`[num_items, num_features]` category indices -> `[num_items, hidden]`."""
        return sum(embedding(features[:, i]) for i, embedding in enumerate(self.embeddings))


class ProtoMolBatchNorm(nn.BatchNorm1d):
    """BatchNorm over atoms that also accepts a batch holding a single atom (e.g. one "[Na+]"): it then
    normalises with the running statistics instead of failing on a batch variance of one value."""

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """`[num_atoms, features]` -> `[num_atoms, features]`."""
        if self.training and states.shape[0] == 1:
            return F.batch_norm(
                states, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(states)


def cpu_dropout(states: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout of a CPU tensor (any shape), as `F.dropout` with p rounded to a multiple of 1 / 65536.
    torch draws one random number per element; in a CPU training step of the default model that was a third of
    the time (aten::bernoulli_ in benchmarks.speed.training_profile). Here each 64-bit draw gives four 16-bit
    uniforms, which makes dropout about three times faster."""
    count = states.numel()
    # Drawn over the whole int64 range, each of a draw's four 16-bit words is uniform in [-32768, 32768).
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=states.device).random_(-(2**63), None)
    uniforms = words.view(torch.int16)[:count].view(states.shape)
    # A float mask: one multiplication forward and one backward (masked_fill copies twice).
    return states * (uniforms >= round(p * 65536) - 32768).to(states.dtype).mul_(1 / (1 - p))


def _uses_cpu_dropout(states: torch.Tensor, p: float, training: bool) -> bool:
    # On GPUs torch's own dropout (fused into the attention kernels there) is fast.
    return training and 0 < p < 1 and states.device.type == "cpu"


class ProtoMolDropout(nn.Dropout):
    """`nn.Dropout` that uses `cpu_dropout` when training on CPU: `[*]` -> `[*]`."""

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if _uses_cpu_dropout(states, self.p, self.training):
            return cpu_dropout(states, self.p)
        return super().forward(states)


class ProtoMolAttention(nn.MultiheadAttention):
    """`nn.MultiheadAttention` (same weights and arguments; built here with `batch_first=True` and one packed input
    projection) that computes the attention itself on CPU: in training to drop attention probabilities with
    `cpu_dropout`, in inference to call the fused kernel without `nn.MultiheadAttention`'s layout copies (a third
    less time per call at batch 64). On other devices `nn.MultiheadAttention` runs."""

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`query [batch, query_len, hidden]`, `key`/`value [batch, key_len, hidden]`, `key_padding_mask [batch,
        key_len]` (True or -inf = padding) -> `[batch, query_len, hidden]` and the weights if asked for."""
        if attn_mask is not None or is_causal or query.device.type != "cpu":
            return super().forward(
                query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal
            )
        batch_size, query_len, hidden = query.shape
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        query_heads, key_heads, value_heads = (
            F.linear(states, weight, bias).unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
            for states, weight, bias in zip((query, key, value), self.in_proj_weight.chunk(3), biases, strict=True)
        )
        # One additive bias `[batch, 1, 1, key_len]` (-inf = padding) serves the fused kernel and the explicit math.
        bias = None
        if key_padding_mask is not None:
            bias = key_padding_mask[:, None, None, :]
            if bias.dtype == torch.bool:
                bias = torch.zeros_like(bias, dtype=query.dtype).masked_fill(bias, float("-inf"))
        drops = _uses_cpu_dropout(query, self.dropout, self.training)
        if not (drops or need_weights):
            attended = F.scaled_dot_product_attention(query_heads, key_heads, value_heads, attn_mask=bias)
            return self.out_proj(attended.transpose(1, 2).reshape(batch_size, query_len, hidden)), None
        # Scaling the queries costs a fraction of scaling the scores; the in-place add saves a full-size copy
        # (matmul's backward needs its inputs, not its output).
        scores = (query_heads * self.head_dim**-0.5) @ key_heads.transpose(-2, -1)
        if bias is not None:
            scores += bias
        probs = cpu_dropout(scores.softmax(-1), self.dropout) if drops else scores.softmax(-1)
        # As in nn.MultiheadAttention, the weights returned are the ones applied (after dropout).
        weights = (probs.mean(1) if average_attn_weights else probs) if need_weights else None
        attended = (probs @ value_heads).transpose(1, 2).reshape(batch_size, query_len, hidden)
        return self.out_proj(attended), weights


class ProtoMolRefinerLayer(nn.TransformerEncoderLayer):
    """Pre-norm transformer encoder layer over token states (`nn.TransformerEncoderLayer` and its weight names)
    with `ProtoMolAttention` and `ProtoMolDropout`; the attention probabilities have their own dropout rate."""

    def __init__(self, config: ProtoMolConfig):
        hidden, heads = config.hidden_size, config.num_attention_heads
        super().__init__(
            hidden,
            heads,
            dim_feedforward=config.refiner_intermediate_size,
            dropout=config.attention_dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.self_attn = ProtoMolAttention(hidden, heads, dropout=config.attention_probs_dropout, batch_first=True)
        self.dropout = ProtoMolDropout(config.attention_dropout)
        self.dropout1 = ProtoMolDropout(config.attention_dropout)
        self.dropout2 = ProtoMolDropout(config.attention_dropout)


class ProtoMolGraphLayer(nn.Module):
    """One GINE layer with its own bond embedding, then BatchNorm, ReLU and dropout."""

    def __init__(self, config: ProtoMolConfig):
        super().__init__()
        hidden = config.hidden_size
        self.bond_encoder = ProtoMolCategoricalEncoder(config.bond_vocab_sizes, hidden)
        mlp = nn.Sequential(
            nn.Linear(hidden, 2 * hidden), ProtoMolBatchNorm(2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden)
        )
        self.conv = GINEConv(mlp, train_eps=False)
        self.norm = ProtoMolBatchNorm(hidden)
        self.dropout = ProtoMolDropout(config.graph_dropout)

    def forward(
        self, atom_states: torch.Tensor, edge_index: torch.LongTensor, bond_features: torch.LongTensor
    ) -> torch.Tensor:
        """`[num_atoms, hidden]`, `[2, num_edges]`, `[num_edges, num_bond_features]` -> `[num_atoms, hidden]`."""
        updated = self.conv(atom_states, edge_index, self.bond_encoder(bond_features))
        return self.dropout(F.relu(self.norm(updated)))


class ProtoMolCrossModalLayer(nn.Module):
    """Bidirectional pre-norm cross-attention: atoms attend to tokens and tokens to atoms, both
    computed from the states before the update, each added residually."""

    def __init__(self, config: ProtoMolConfig):
        super().__init__()
        hidden, heads, dropout = config.hidden_size, config.num_attention_heads, config.attention_probs_dropout
        self.atom_norm = nn.LayerNorm(hidden)
        self.token_norm = nn.LayerNorm(hidden)
        self.atoms_to_tokens = ProtoMolAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.tokens_to_atoms = ProtoMolAttention(hidden, heads, dropout=dropout, batch_first=True)

    def forward(
        self,
        atom_states: torch.Tensor,
        atom_mask: torch.Tensor,
        token_states: torch.Tensor,
        token_mask: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]:
        """`atom_states [batch, max_atoms, hidden]`, `atom_mask [batch, max_atoms]`, `token_states
        [batch, seq_len, hidden]`, `token_mask [batch, seq_len]` (True = real) -> updated states and weights."""
        atoms, tokens = self.atom_norm(atom_states), self.token_norm(token_states)
        atom_update, atom_weights = self.atoms_to_tokens(
            atoms, tokens, tokens, key_padding_mask=~token_mask, need_weights=output_attentions
        )
        token_update, token_weights = self.tokens_to_atoms(
            tokens, atoms, atoms, key_padding_mask=~atom_mask, need_weights=output_attentions
        )
        return atom_states + atom_update, token_states + token_update, (atom_weights, token_weights)


class ProtoMolFusionLayer(GradientCheckpointingLayer):
    """Layer l of both branches: a GINE layer, a text-refiner layer and, if enabled here, cross-attention."""

    def __init__(self, config: ProtoMolConfig, with_cross_attention: bool):
        super().__init__()
        # A branch left out by `config.branches` (single-branch ablation) has no layers: its states pass through.
        self.graph_layer = ProtoMolGraphLayer(config) if config.uses_graph else None
        self.refiner_layer = ProtoMolRefinerLayer(config) if config.uses_text else None
        self.cross_modal = ProtoMolCrossModalLayer(config) if with_cross_attention else None

    def forward(
        self,
        atom_states: torch.Tensor,
        token_states: torch.Tensor,
        edge_index: torch.LongTensor,
        bond_features: torch.LongTensor,
        dense_atom_index: torch.Tensor,
        atom_mask: torch.Tensor,
        token_mask: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None] | None]:
        """`atom_states [num_atoms, hidden]`, `token_states [batch, seq_len, hidden]` -> both updated, and attention
        weights. `dense_atom_index [num_atoms]` and `atom_mask [batch, max_atoms]` place the atoms in a padded
        `[batch, max_atoms]` layout for the cross-attention (see `dense_atom_layout`)."""
        if self.graph_layer is not None:
            atom_states = self.graph_layer(atom_states, edge_index, bond_features)
        if self.refiner_layer is not None:
            with _without_mha_fast_path():
                token_states = self.refiner_layer(token_states, src_key_padding_mask=~token_mask)
        if self.cross_modal is None:
            return atom_states, token_states, None
        batch_size, max_atoms = atom_mask.shape
        padded = atom_states.new_zeros(batch_size * max_atoms, atom_states.shape[-1])
        dense_atoms = padded.index_copy(0, dense_atom_index, atom_states).view(batch_size, max_atoms, -1)
        dense_atoms, token_states, weights = self.cross_modal(
            dense_atoms, atom_mask, token_states, token_mask, output_attentions=output_attentions
        )
        return dense_atoms.reshape(batch_size * max_atoms, -1).index_select(0, dense_atom_index), token_states, weights


class ProtoMolPrototypeSpace(nn.Module):
    """Learnable class-specific prototypes, one set per task, and the projections of both modalities into their space."""

    def __init__(self, config: ProtoMolConfig):
        super().__init__()
        hidden = config.hidden_size
        self.graph_projection = nn.Linear(hidden, hidden)
        self.text_projection = nn.Linear(hidden, hidden)
        # Prototype p of a task anchors class p // num_prototypes_per_class.
        self.prototypes = nn.Parameter(torch.empty(config.num_tasks, config.num_prototypes_per_task, hidden))

    def forward(self, graph_embeds: torch.Tensor, text_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`[batch, hidden]` twice -> cosine similarities `[batch, num_tasks, num_prototypes_per_task]` twice."""
        prototypes = F.normalize(self.prototypes, dim=-1)
        graph = F.normalize(self.graph_projection(graph_embeds), dim=-1)
        text = F.normalize(self.text_projection(text_embeds), dim=-1)
        return torch.einsum("bh,tkh->btk", graph, prototypes), torch.einsum("bh,tkh->btk", text, prototypes)


class ProtoMolPreTrainedModel(PreTrainedModel):
    """Base class of the ProtoMol models: config class, weight initialisation and `from_pretrained` settings."""

    config_class = ProtoMolConfig
    config: ProtoMolConfig
    base_model_prefix = "protomol"
    main_input_name = "atom_features"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ProtoMolFusionLayer"]
    # The Trainer divides by gradient-accumulation steps itself: forward returns per-batch means.
    accepts_loss_kwargs = False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing weights that do not fit the config with a ValueError naming
        each differing weight: shapes that differ, weights the checkpoint lacks and weights it has that the model
        would leave unused (e.g. a regression checkpoint loaded as a classifier). transformers would re-initialize
        or drop them with only a logged report; pass `allow_missing_weights=True` to accept missing ones (e.g. a
        new head on a base-model checkpoint) and `allow_unused_weights=True` to drop unused ones (e.g. moving a
        model to another task). A base model loaded from a head checkpoint leaves the head out."""
        allow_missing = kwargs.pop("allow_missing_weights", False)
        allow_unused = kwargs.pop("allow_unused_weights", False)
        allow_mismatched = kwargs.pop("ignore_mismatched_sizes", False)
        return_info = kwargs.pop("output_loading_info", False)
        with _held_log_records(_TRANSFORMERS_LOADING_LOGGER) as load_report:
            loaded: Any = super().from_pretrained(
                pretrained_model_name_or_path,
                *model_args,
                ignore_mismatched_sizes=True,
                output_loading_info=True,
                **kwargs,
            )
        model, info = loaded  # with output_loading_info, transformers returns (model, loading info)
        problems = []
        if not allow_mismatched:
            problems += [
                f"{key} has shape {tuple(saved)} in the checkpoint but {tuple(expected)} under the config"
                for key, saved, expected in sorted(info["mismatched_keys"])
            ]
        if not allow_missing:
            problems += [f"{key} is missing from the checkpoint" for key in sorted(info["missing_keys"])]
        unused = [] if allow_unused else sorted(info["unexpected_keys"])
        if model.base_model is model:
            # Only keys of the base model's own parts count; the rest are the head's.
            own_parts = {name.split(".")[0] for name in model.state_dict()} | {cls.base_model_prefix}
            unused = [key for key in unused if key.split(".")[0] in own_parts]
        problems += [f"{key} is in the checkpoint but not in the model this config builds" for key in unused]
        if problems:
            config = model.config
            listed = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
            raise ValueError(
                f"{pretrained_model_name_or_path}: the weights do not match the config (problem_type="
                f"{config.problem_type}, num_tasks={config.num_tasks}, hidden_size={config.hidden_size}, "
                f"num_layers={config.num_layers}, num_prototypes_per_class={config.num_prototypes_per_class}): {listed}"
            )
        # Nothing refused: transformers' report (e.g. the head weights a base model left out) is worth showing.
        load_report.release()
        return (model, info) if return_info else model

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, ProtoMolPrototypeSpace):
            init.normal_(module.prototypes, mean=0.0, std=1.0)
        elif isinstance(module, GINEConv):
            init.constant_(module.eps, module.initial_eps)
        elif isinstance(module, ProtoMolForMolecularPropertyPrediction):
            init.zeros_(module.prototype_weights)
            # Not saved with the weights (derived from the config), so `from_pretrained` must rebuild it here.
            init.copy_(module.prototype_classes, module._prototype_classes(module.config))
            if module.config.problem_type == "regression":
                init.zeros_(module.target_mean)
                init.ones_(module.target_std)
                init.zeros_(module.class_boundaries)


def dense_atom_layout(molecule_index: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each atom goes in a padded `[batch, max_atoms]` layout: its flat position `[num_atoms]` in
    `batch * max_atoms`, and the mask `[batch, max_atoms]` of real atoms. `molecule_index [num_atoms]` must be
    sorted (each molecule's atoms together, as the collator makes it). Computed once per forward pass, it reads
    the largest molecule size from the device once; `to_dense_batch` and boolean indexing in every fused layer
    waited for the GPU twice per layer."""
    counts = torch.bincount(molecule_index, minlength=batch_size)
    max_atoms = int(counts.max())
    first_atom = counts.cumsum(0) - counts
    position = torch.arange(molecule_index.numel(), device=molecule_index.device) - first_atom[molecule_index]
    atom_mask = torch.arange(max_atoms, device=molecule_index.device) < counts.unsqueeze(1)
    return molecule_index * max_atoms + position, atom_mask


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`[batch, seq_len, hidden]`, `[batch, seq_len]` -> `[batch, hidden]` mean over the positions where mask is True."""
    weights = mask.unsqueeze(-1).to(states.dtype)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class ProtoMolModel(ProtoMolPreTrainedModel):
    """Graph branch (GINE), text branch (language model + refiner), layer-wise cross-attention and
    the prototype space. Returns summaries, per-layer states and prototype similarities."""

    def __init__(self, config: ProtoMolConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.atom_encoder = ProtoMolCategoricalEncoder(config.atom_vocab_sizes, hidden)
        self.text_model = AutoModel.from_config(config.text_config)
        self._configure_text_model_training(config)
        self.text_input_projection = nn.Linear(config.text_config.hidden_size, hidden)
        fused_layers = {
            "every_layer": set(range(config.num_layers)),
            "last_layer": {config.num_layers - 1},
            "none": set(),
        }[config.cross_attention]
        self.layers = nn.ModuleList(ProtoMolFusionLayer(config, i in fused_layers) for i in range(config.num_layers))
        self.readout = _READOUT_FUNCTIONS[config.readout]
        self.prototype_space = ProtoMolPrototypeSpace(config)
        # Parts the forward pass never uses get no gradient, which DDP refuses unless told to search for unused
        # parameters: the input of a branch left out (kept for the checkpoint layout) and the text model's
        # pooler (ProtoMol reads token states, never the pooled output), adapters included.
        unused: list[nn.Module] = [self.atom_encoder] if not config.uses_graph else []
        unused += [self.text_input_projection] if not config.uses_text else []
        unused += [self.text_model.pooler] if getattr(self.text_model, "pooler", None) is not None else []
        for module in unused:
            module.requires_grad_(False)
        self.post_init()

    def train(self, mode: bool = True) -> "ProtoMolModel":
        """`nn.Module.train`, except that a frozen text model stays in eval mode: its dropout would make the token
        states of one text differ between steps, and from the cached ones (computed in eval mode)."""
        super().train(mode)
        if self.config.text_model_mode == "frozen":
            self.text_model.eval()
        return self

    def _configure_text_model_training(self, config):
        """Frozen: no gradients. LoRA: peft adapters are the only trainable text weights. Full: all train."""
        if config.text_model_mode == "full":
            return
        self.text_model.requires_grad_(False)
        if config.text_model_mode == "lora":
            # In a try block, which transformers' check of remote code's imports skips: a frozen checkpoint must
            # load where only the model card's packages are installed, and only LoRA models need peft.
            try:
                from peft import LoraConfig, inject_adapter_in_model
            except ImportError:
                raise ImportError("a LoRA text model needs peft: pip install peft") from None

            lora_config = LoraConfig(
                r=config.lora_rank,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=config.lora_target_modules or "all-linear",
            )
            self.text_model = inject_adapter_in_model(lora_config, self.text_model)
            for name, module in self.text_model.named_modules():
                if "lora_" in name:
                    # peft already initialised the adapters (B = 0): keep post_init from re-drawing them.
                    module._is_hf_initialized = True
                    module.requires_grad_(True)

    @sdpa_kernel(ATTENTION_BACKENDS)
    def encode_text(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Token states `[batch, seq_len, text_hidden]` of the language model."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.text_model_mode != "frozen"):
            return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    @sdpa_kernel(ATTENTION_BACKENDS)
    def forward(
        self,
        atom_features: torch.LongTensor,
        edge_index: torch.LongTensor,
        bond_features: torch.LongTensor,
        molecule_index: torch.LongTensor,
        attention_mask: torch.Tensor,
        input_ids: torch.LongTensor | None = None,
        text_embeds: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> ProtoMolModelOutput:
        r"""
        atom_features (`[num_atoms, num_atom_features]`): categorical atom features of all molecules in the batch.
        edge_index (`[2, num_edges]`): directed bonds, atom indices offset per molecule.
        bond_features (`[num_edges, num_bond_features]`): categorical bond features.
        molecule_index (`[num_atoms]`): which molecule of the batch each atom belongs to.
        attention_mask (`[batch, seq_len]`): 1 for real tokens of the description.
        input_ids (`[batch, seq_len]`): description tokens; the language model runs on them.
        text_embeds (`[batch, seq_len, text_hidden]`): precomputed token states of the (frozen) language model,
            used instead of `input_ids`, e.g. from a text-feature cache.
        """
        if text_embeds is None and input_ids is not None:
            text_embeds = self.encode_text(input_ids, attention_mask)
        elif text_embeds is None or input_ids is not None:
            raise ValueError("Pass exactly one of `input_ids` (runs the text model) or `text_embeds` (precomputed)")
        token_mask = attention_mask.bool()
        token_states = self.text_input_projection(text_embeds.to(self.text_input_projection.weight.dtype))
        atom_states = self.atom_encoder(atom_features)

        dense_atom_index, atom_mask = dense_atom_layout(molecule_index, token_states.shape[0])
        graph_readouts, text_readouts, graph_hidden, text_hidden, attentions = [], [], [], [], []
        for layer in self.layers:
            atom_states, token_states, weights = layer(
                atom_states,
                token_states,
                edge_index,
                bond_features,
                dense_atom_index,
                atom_mask,
                token_mask,
                output_attentions,
            )
            graph_readouts.append(self.readout(atom_states, molecule_index, token_states.shape[0]))
            text_readouts.append(masked_mean(token_states, token_mask))
            graph_hidden.append(atom_states)
            text_hidden.append(token_states)
            if weights is not None:
                attentions.append(weights)

        graph_embeds = torch.stack(graph_readouts).mean(0)
        text_pooled_embeds = torch.stack(text_readouts).mean(0)
        # The summary of a branch that does not run (single-branch ablation) must not reach the heads.
        if not self.config.uses_graph:
            graph_embeds = torch.zeros_like(graph_embeds)
        if not self.config.uses_text:
            text_pooled_embeds = torch.zeros_like(text_pooled_embeds)
        graph_similarities, text_similarities = self.prototype_space(graph_embeds, text_pooled_embeds)
        return ProtoMolModelOutput(
            graph_embeds=graph_embeds,
            text_pooled_embeds=text_pooled_embeds,
            fused_embeds=torch.cat([graph_embeds, text_pooled_embeds], dim=-1),
            graph_prototype_similarities=graph_similarities,
            text_prototype_similarities=text_similarities,
            graph_hidden_states=tuple(graph_hidden) if output_hidden_states else None,
            text_hidden_states=tuple(text_hidden) if output_hidden_states else None,
            cross_attentions=tuple(attentions) if output_attentions else None,
        )


def top_k_log_probs(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Log-softmax over the `k` largest entries of the last dim; the others get probability 0 (-inf)."""
    # From the indices, not a threshold: with ties at the k-th value a threshold would keep more than k.
    kept = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(k, dim=-1).indices, True)
    return logits.masked_fill(~kept, float("-inf")).log_softmax(-1)


def sparse_kl_divergence(sparse_log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) summed over the last dim, where p may hold exact zeros (they contribute nothing)."""
    p = sparse_log_p.exp()
    return (p * (sparse_log_p.masked_fill(p == 0, 0.0) - log_q)).sum(-1)


def masked_average(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` over the True entries of `mask`; 0 (still differentiable) when none is True."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


class ProtoMolForMolecularPropertyPrediction(ProtoMolPreTrainedModel):
    """ProtoMol with its predictor head and all training objectives computed in `forward`."""

    # Buffers registered in `__init__` (the regression statistics only for regression models).
    prototype_classes: torch.Tensor
    target_mean: torch.Tensor
    target_std: torch.Tensor
    class_boundaries: torch.Tensor

    def __init__(self, config: ProtoMolConfig):
        super().__init__(config)
        self.protomol = ProtoMolModel(config)
        self.predictor = nn.Linear(2 * config.hidden_size, config.num_tasks)
        # Per task, a weight for each prototype probability of both modalities.
        self.prototype_weights = nn.Parameter(torch.empty(config.num_tasks, 2 * config.num_prototypes_per_task))
        self.register_buffer("prototype_classes", self._prototype_classes(config), persistent=False)
        if config.problem_type == "regression":
            # Training-set statistics, saved with the weights: targets are standardized for the loss and
            # predictions returned in the target's units; boundaries partition targets into prototype classes.
            # float32 whatever the model's dtype (see `_apply`).
            shapes = ((config.num_tasks,), (config.num_tasks,), (config.num_tasks, config.num_classes - 1))
            for name, shape in zip(_REGRESSION_STATISTICS, shapes, strict=True):
                self.register_buffer(name, torch.empty(shape, dtype=torch.float32))
        self.post_init()

    def _apply(self, fn, recurse=True):
        """`nn.Module._apply` (behind `.to`, `.bfloat16()`, `.half()`, ...), keeping the regression statistics in
        float32: bfloat16 keeps 8 significant bits, so QM7's mean of -1524.9 would become -1528 and every
        prediction would move with it."""
        statistics = {name: getattr(self, name) for name in _REGRESSION_STATISTICS if name in self._buffers}
        super()._apply(fn, recurse)
        for name, before in statistics.items():
            after = getattr(self, name)
            if after.dtype != before.dtype:
                setattr(self, name, before.to(after.device))
        return self

    @staticmethod
    def _prototype_classes(config: ProtoMolConfig) -> torch.Tensor:
        """Class anchored by each prototype of a task `[num_prototypes_per_task]`: class c owns a run of N."""
        return torch.arange(config.num_classes).repeat_interleave(config.num_prototypes_per_class)

    @classmethod
    def from_text_pretrained(
        cls, text_model_dir: str | PathLike[str], **config_kwargs: Any
    ) -> "ProtoMolForMolecularPropertyPrediction":
        """A fresh ProtoMol around the pretrained language model saved in `text_model_dir` (a local folder)."""
        text_model = AutoModel.from_pretrained(text_model_dir)
        config = ProtoMolConfig(text_config=AutoConfig.from_pretrained(text_model_dir).to_dict(), **config_kwargs)
        model = cls(config)
        target = model.protomol.text_model
        target_keys = set(target.state_dict())
        state = {}
        for key, value in text_model.state_dict().items():
            # LoRA wraps adapted linears, which moves their weights under `base_layer`.
            lora_key = key.rsplit(".", 1)[0] + ".base_layer." + key.rsplit(".", 1)[1]
            state[key if key in target_keys else lora_key] = value
        missing, unexpected = target.load_state_dict(state, strict=False)
        missing = [key for key in missing if "lora_" not in key]
        if missing or unexpected:
            raise ValueError(f"text model weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    @torch.no_grad()
    def set_target_statistics(self, labels: torch.Tensor | np.ndarray) -> None:
        """Record regression statistics from training labels `[num_molecules, num_tasks]` (NaN = missing):
        per-task mean and std for standardization, and quantile boundaries for the prototype classes."""
        if self.config.problem_type != "regression":
            raise ValueError("target statistics apply to regression models only")
        labels = torch.as_tensor(labels, dtype=torch.float64).reshape(-1, self.config.num_tasks)
        quantiles = torch.linspace(0, 1, self.config.num_classes + 1, dtype=torch.float64)[1:-1]
        for task in range(self.config.num_tasks):
            values = labels[:, task][~labels[:, task].isnan()]
            if values.numel() == 0:
                raise ValueError(f"task {self.config.task_names[task]!r} has no training labels")
            self.target_mean[task] = values.mean()
            self.target_std[task] = values.std(unbiased=False).clamp(min=1e-6)
            self.class_boundaries[task] = torch.quantile(values, quantiles)

    def label_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """`[batch, num_tasks]` labels -> prototype class of each (molecule, task) `[batch, num_tasks]`, long."""
        labels = labels.nan_to_num(0.0)
        if self.config.problem_type == "classification":
            return labels.round().long().clamp(0, 1)
        boundaries = self.class_boundaries.to(labels.dtype)
        return torch.searchsorted(boundaries, labels.t().contiguous(), right=True).t()

    @torch.no_grad()
    def predict(
        self,
        smiles: str | Sequence[str],
        processor: Any,  # the checkpoint's ProtoMolProcessor, which this file cannot import (it needs RDKit)
        text: str | Sequence[str] | None = None,
        batch_size: int = 64,
    ) -> list[dict[str, Any]]:
        """Predict every task for `smiles` (one string or a list) with this checkpoint's `processor`;
        `text` optionally gives each molecule's description.

        Returns one dict per molecule, in input order: `{"smiles": s, "predictions": {task_name: value},
        "error": None}` (probabilities for classification, values in the target's units for regression), or
        `{"smiles": s, "predictions": None, "error": reason}` for a molecule the processor rejects.
        """
        smiles = [smiles] if isinstance(smiles, str) else list(smiles)
        texts = [None] * len(smiles) if text is None else [text] if isinstance(text, str) else list(text)
        if len(texts) != len(smiles):
            raise ValueError(f"got {len(texts)} texts for {len(smiles)} SMILES")
        results: list[dict[str, Any]] = []
        features: dict[int, dict[str, Any]] = {}
        for row, (molecule, description) in enumerate(zip(smiles, texts, strict=True)):
            results.append({"smiles": molecule, "predictions": None, "error": None})
            try:
                features[row] = processor(smiles=molecule, text=description)
            except ValueError as error:  # ProtoMolFeaturizationError or an unusable text
                results[row]["error"] = getattr(error, "reason", None) or str(error)
        self.eval()
        valid_rows = list(features)
        for start in range(0, len(valid_rows), batch_size):
            rows = valid_rows[start : start + batch_size]
            batch = processor.collator([features[row] for row in rows])
            logits = self(**{name: tensor.to(self.device) for name, tensor in batch.items()}).logits.float()
            values = processor.post_process(logits, self.config.problem_type)
            for row, row_values in zip(rows, values.tolist(), strict=True):
                results[row]["predictions"] = dict(zip(self.config.task_names, row_values, strict=True))
        return results

    def forward(
        self,
        atom_features: torch.LongTensor,
        edge_index: torch.LongTensor,
        bond_features: torch.LongTensor,
        molecule_index: torch.LongTensor,
        attention_mask: torch.Tensor,
        input_ids: torch.LongTensor | None = None,
        text_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> ProtoMolPropertyPredictionOutput:
        r"""
        Inputs as [`ProtoMolModel.forward`], and
        labels (`[batch, num_tasks]`, *optional*): float targets, NaN where missing (classification: 0/1;
            regression: in the target's units). Every loss term averages over the present labels only.
        """
        outputs = self.protomol(
            atom_features,
            edge_index,
            bond_features,
            molecule_index,
            attention_mask,
            input_ids=input_ids,
            text_embeds=text_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        config = self.config
        graph_logits = outputs.graph_prototype_similarities / config.prototype_temperature
        text_logits = outputs.text_prototype_similarities / config.prototype_temperature
        graph_log_probs = top_k_log_probs(graph_logits, config.prototype_top_k)
        text_log_probs = top_k_log_probs(text_logits, config.prototype_top_k)
        # A branch that does not run (single-branch ablation) gets no say through its prototypes.
        prototype_probs = torch.cat(
            [graph_log_probs.exp() * float(config.uses_graph), text_log_probs.exp() * float(config.uses_text)], dim=-1
        )
        scores = self.predictor(outputs.fused_embeds) + torch.einsum(
            "btk,tk->bt", prototype_probs, self.prototype_weights
        )
        logits = scores * self.target_std + self.target_mean if config.problem_type == "regression" else scores

        loss = prediction_loss = alignment_loss = contrastive_loss = None
        if labels is not None:
            # float32 labels, also when the model runs in bfloat16: standardizing targets needs the precision.
            labels = labels.float().reshape(scores.shape)
            present = ~labels.isnan()
            prediction_loss = self._prediction_loss(scores, labels, present)
            if config.branches == "both":
                alignment_loss = self._alignment_loss(
                    graph_log_probs, text_log_probs, graph_logits, text_logits, present
                )
            else:  # nothing to align with a single branch
                alignment_loss = scores.new_zeros(())
            used = ((graph_logits, config.uses_graph), (text_logits, config.uses_text))
            branch_logits = [logits for logits, branch_runs in used if branch_runs]
            contrastive_loss = self._contrastive_loss(branch_logits, self.label_classes(labels), present)
            loss = (
                prediction_loss
                + config.alignment_loss_weight * alignment_loss
                + config.contrastive_loss_weight * contrastive_loss
            )

        return ProtoMolPropertyPredictionOutput(
            loss=loss,
            logits=logits,
            prediction_loss=prediction_loss,
            alignment_loss=alignment_loss,
            contrastive_loss=contrastive_loss,
            **outputs,
        )

    def _prediction_loss(self, scores, labels, present):
        """NaN-masked BCE on logits, or MSE on standardized targets."""
        targets = labels.nan_to_num(0.0)
        if self.config.problem_type == "classification":
            per_item = F.binary_cross_entropy_with_logits(scores, targets.to(scores.dtype), reduction="none")
        else:
            per_item = (scores - (targets - self.target_mean) / self.target_std) ** 2
        return masked_average(per_item, present)

    def _alignment_loss(self, graph_log_probs, text_log_probs, graph_logits, text_logits, present):
        """KL between the Top-K graph and text prototype distributions. The sparse side is the target and
        the other side keeps its full softmax, so the divergence stays finite when the Top-K sets differ."""
        graph_to_text = sparse_kl_divergence(graph_log_probs, text_logits.log_softmax(-1))
        text_to_graph = sparse_kl_divergence(text_log_probs, graph_logits.log_softmax(-1))
        per_item = {
            "symmetric": 0.5 * (graph_to_text + text_to_graph),
            "graph_to_text": graph_to_text,
            "text_to_graph": text_to_graph,
        }[self.config.alignment_direction]
        return masked_average(per_item, present)

    def _contrastive_loss(self, branch_logits, classes, present):
        """Supervised InfoNCE over prototypes, averaged over the branches' logits (the molecule's own-class
        prototypes are the positives), plus a penalty on positive cosine similarity between prototypes of
        different classes."""
        positive = self.prototype_classes.view(1, 1, -1) == classes.unsqueeze(-1)
        info_nce: torch.Tensor | float = 0.0
        for logits in branch_logits:
            positive_logsumexp = logits.masked_fill(~positive, float("-inf")).logsumexp(-1)
            info_nce = info_nce + masked_average(logits.logsumexp(-1) - positive_logsumexp, present) / len(
                branch_logits
            )
        prototypes = F.normalize(self.protomol.prototype_space.prototypes, dim=-1)
        similarity = torch.einsum("tkh,tjh->tkj", prototypes, prototypes)
        other_class = self.prototype_classes.view(-1, 1) != self.prototype_classes.view(1, -1)
        separation = F.relu(similarity)[:, other_class].mean()
        return info_nce + separation


__all__ = [
    "ProtoMolForMolecularPropertyPrediction",
    "ProtoMolModel",
    "ProtoMolModelOutput",
    "ProtoMolPreTrainedModel",
    "ProtoMolPropertyPredictionOutput",
]
