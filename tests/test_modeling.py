"""ProtoMol model: shapes, losses, masking, ablations, remote-code round trip, LoRA, checkpointing."""

import json

import pytest
import torch
from conftest import SMILES, run_without_protomol_hf, tiny_config
from torch_geometric.utils import to_dense_batch
from transformers import Qwen2Config

from protomol_hf import (
    ProtoMolConfig,
    ProtoMolForMolecularPropertyPrediction,
    ProtoMolModel,
    configuration_protomol,
    featurization_protomol,
    modeling_protomol,
)
from protomol_hf.modeling_protomol import (
    ProtoMolAttention,
    ProtoMolRefinerLayer,
    cpu_dropout,
    dense_atom_layout,
    top_k_log_probs,
)

NAN = float("nan")


def assert_same_outputs(actual, expected):
    """Outputs of a model and its reload. Weights load bit for bit (checked where the state dicts are
    compared), but CPU matmul kernels may pick a different path for differently aligned buffers, which moves
    float32 results in the last bits (seen on AMD EPYC); a weight that failed to load moves them by far more."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-7)


def make_model(**overrides):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config(**overrides))
    if model.config.problem_type == "regression":
        model.set_target_statistics(torch.randn(50, model.config.num_tasks) * 2 + 3)
    return model


def test_config_vocabularies_match_the_featurizer():
    assert tuple(configuration_protomol.DEFAULT_ATOM_VOCAB_SIZES) == featurization_protomol.ATOM_FEATURE_VOCAB_SIZES
    assert tuple(configuration_protomol.DEFAULT_BOND_VOCAB_SIZES) == featurization_protomol.BOND_FEATURE_VOCAB_SIZES


def test_config_names_the_output_columns_after_the_tasks(tmp_path):
    config = tiny_config(num_tasks=2, task_names=["logS", "logP"])
    config.save_pretrained(tmp_path)
    # An explicit None, as a hand-edited config may hold, gets the task names as well.
    unnamed = tiny_config(task_names=["logS"], id2label=None, label2id=None)
    assert unnamed.id2label == {0: "logS"} and unnamed.label2id == {"logS": 0}
    for loaded in (config, ProtoMolConfig.from_pretrained(tmp_path)):
        assert loaded.id2label == {0: "logS", 1: "logP"} and loaded.label2id == {"logS": 0, "logP": 1}
        assert loaded.num_labels == 2


def test_defaults_follow_the_method():
    config = ProtoMolConfig()
    assert config.cross_attention == "every_layer"
    assert config.num_prototypes_per_class == 5 and config.num_prototypes_per_task == 10
    assert config.alignment_direction == "symmetric"
    assert config.text_model_mode == "frozen"
    assert config.regression_num_bins == 2
    assert config.problem_type == "classification"
    assert config.text_config.model_type == "bert" and config.text_config.hidden_size == 384


@pytest.mark.parametrize(
    "option", [dict(cross_attention="sideways"), dict(readout="median"), dict(problem_type="ranking")]
)
def test_config_rejects_unknown_choices(option):
    with pytest.raises(ValueError, match="choose one of"):
        ProtoMolConfig(**option)


@pytest.mark.parametrize("problem_type", ["classification", "regression"])
@pytest.mark.parametrize("num_tasks", [1, 3])
def test_shapes_and_finite_differentiable_losses(processor, problem_type, num_tasks):
    model = make_model(problem_type=problem_type, num_tasks=num_tasks).train()
    labels = torch.randint(0, 2, (len(SMILES), num_tasks)).float()
    labels[0, 0] = NAN
    batch = processor(smiles=SMILES, labels=labels, return_tensors="pt")
    out = model(**batch, output_attentions=True, output_hidden_states=True)

    assert out.logits.shape == (len(SMILES), num_tasks)
    k = model.config.num_prototypes_per_task
    assert out.graph_prototype_similarities.shape == (len(SMILES), num_tasks, k)
    assert out.fused_embeds.shape == (len(SMILES), 2 * model.config.hidden_size)
    assert len(out.graph_hidden_states) == len(out.text_hidden_states) == model.config.num_layers
    assert out.graph_hidden_states[0].shape == (batch["atom_features"].shape[0], model.config.hidden_size)
    atoms_to_tokens, tokens_to_atoms = out.cross_attentions[0]
    max_atoms, seq_len = torch.bincount(batch["molecule_index"]).max().item(), batch["input_ids"].shape[1]
    assert atoms_to_tokens.shape == (len(SMILES), max_atoms, seq_len)
    assert tokens_to_atoms.shape == (len(SMILES), seq_len, max_atoms)
    for term in (out.loss, out.prediction_loss, out.alignment_loss, out.contrastive_loss):
        assert term.ndim == 0 and torch.isfinite(term)
    out.loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)


def test_batch_of_one_one_atom_molecule_and_truncated_text(tokenizer):
    from protomol_hf import ProtoMolProcessor

    processor = ProtoMolProcessor(tokenizer, max_text_length=8)
    batch = processor(smiles=["[Na+]"], labels=[1.0], return_tensors="pt")
    assert batch["input_ids"].shape == (1, 8)  # the template text is longer than 8 tokens
    assert batch["edge_index"].shape == (2, 0)
    model = make_model().train()
    out = model(**batch)
    assert out.logits.shape == (1, 1) and torch.isfinite(out.loss)
    out.loss.backward()


def test_missing_labels_contribute_nothing(processor):
    model = make_model(num_tasks=3, graph_dropout=0.0, attention_dropout=0.0, attention_probs_dropout=0.0).eval()
    batch = processor(smiles=SMILES[:3], return_tensors="pt")
    text_embeds = torch.randn(3, batch["input_ids"].shape[1], model.config.text_config.hidden_size, requires_grad=True)
    labels = torch.tensor([[1.0, NAN, 0.0], [NAN, NAN, NAN], [0.0, 1.0, NAN]])
    del batch["input_ids"]
    out = model(**batch, text_embeds=text_embeds, labels=labels)
    out.graph_prototype_similarities.retain_grad()
    out.loss.backward()

    # Molecule 1 has no label at all: nothing of it reaches the loss.
    assert torch.count_nonzero(text_embeds.grad[1]) == 0
    assert torch.count_nonzero(text_embeds.grad[0]) > 0 and torch.count_nonzero(text_embeds.grad[2]) > 0
    # Per (molecule, task): a missing label leaves that task's prototype similarities out of every term.
    grad_per_item = out.graph_prototype_similarities.grad.abs().sum(-1)
    assert torch.equal(grad_per_item == 0, labels.isnan())


def test_all_labels_missing_gives_zero_loss_that_still_backpropagates(processor):
    model = make_model().train()
    out = model(**processor(smiles=SMILES[:2], labels=[NAN, NAN], return_tensors="pt"))
    assert out.prediction_loss == 0 and out.alignment_loss == 0
    out.loss.backward()


def test_cross_attention_switch_changes_the_architecture(processor):
    batch = processor(smiles=SMILES[:3], return_tensors="pt")
    counts = {}
    for mode in ("every_layer", "last_layer", "none"):
        model = make_model(cross_attention=mode, num_layers=3).eval()
        fused = [layer.cross_modal is not None for layer in model.protomol.layers]
        counts[mode] = len(model(**batch, output_attentions=True).cross_attentions)
        assert fused == {"every_layer": [True] * 3, "last_layer": [False, False, True], "none": [False] * 3}[mode]
    assert counts == {"every_layer": 3, "last_layer": 1, "none": 0}


@pytest.mark.parametrize("branch", ["graph", "text"])
def test_single_branch_ablation_ignores_the_other_modality(processor, branch):
    model = make_model(branches=branch, cross_attention="none").eval()
    layer = model.protomol.layers[0]
    assert (layer.graph_layer is None, layer.refiner_layer is None) == (branch == "text", branch == "graph")
    batch = processor(smiles=SMILES[:3], labels=[1, 0, 1], return_tensors="pt")
    out = model(**batch)
    assert out.alignment_loss == 0 and torch.isfinite(out.loss)
    # Changing the unused modality's input leaves every output unchanged; changing the used one does not.
    unused, used = ("input_ids", "atom_features") if branch == "graph" else ("atom_features", "input_ids")
    for name, expect_same in ((unused, True), (used, False)):
        changed = dict(batch, **{name: batch[name].flip(0) if name == "input_ids" else batch[name] % 2})
        assert torch.allclose(model(**changed).logits, out.logits) == expect_same, name
    out.loss.backward()


def test_dense_atom_layout_matches_to_dense_batch():
    molecule_index = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 3])
    atoms = torch.randn(len(molecule_index), 5)
    expected, expected_mask = to_dense_batch(atoms, molecule_index, batch_size=4)
    index, mask = dense_atom_layout(molecule_index, batch_size=4)
    dense = atoms.new_zeros(4 * mask.shape[1], 5).index_copy(0, index, atoms).view(4, mask.shape[1], 5)
    assert torch.equal(mask, expected_mask) and torch.equal(dense, expected)
    assert torch.equal(dense.view(-1, 5).index_select(0, index), atoms)


def test_single_branch_needs_cross_attention_off():
    with pytest.raises(ValueError, match="set cross_attention='none'"):
        ProtoMolConfig(branches="graph")


def test_loss_weights_switch_terms_off(processor):
    batch = processor(smiles=SMILES[:4], labels=[1, 0, 1, 0], return_tensors="pt")
    model = make_model().eval()
    full = model(**batch)
    for weight, term in (("alignment_loss_weight", "alignment_loss"), ("contrastive_loss_weight", "contrastive_loss")):
        setattr(model.config, weight, 0.0)
        out = model(**batch)
        setattr(model.config, weight, 0.1)
        assert torch.isclose(out.loss, full.loss - 0.1 * full[term], atol=1e-6)


def test_prototype_count_and_top_k(processor):
    batch = processor(smiles=SMILES[:3], return_tensors="pt")
    model = make_model(num_prototypes_per_class=7, prototype_top_k=4).eval()
    assert model.protomol.prototype_space.prototypes.shape == (1, 14, 32)
    probs = top_k_log_probs(torch.randn(3, 1, 14), 4).exp()
    assert ((probs > 0).sum(-1) == 4).all() and torch.allclose(probs.sum(-1), torch.ones(3, 1))
    # Same weights, another Top-K: the prediction changes because it reads the sparse distributions.
    torch.nn.init.normal_(model.prototype_weights)
    other = ProtoMolForMolecularPropertyPrediction(tiny_config(num_prototypes_per_class=7, prototype_top_k=1)).eval()
    other.load_state_dict(model.state_dict())
    assert not torch.allclose(model(**batch).logits, other(**batch).logits)
    with pytest.raises(ValueError, match="prototype_top_k"):
        tiny_config(prototype_top_k=15, num_prototypes_per_class=7)


def test_regression_predicts_in_target_units_and_partitions_at_the_median():
    model = make_model(problem_type="regression")
    labels = torch.tensor([[1.0], [2.0], [3.0], [10.0]])
    model.set_target_statistics(labels)
    assert torch.isclose(model.target_mean, torch.tensor([4.0])).all()
    assert torch.isclose(model.class_boundaries, torch.tensor([[2.5]])).all()
    assert model.label_classes(labels).flatten().tolist() == [0, 0, 1, 1]


def test_target_statistics_skip_missing_labels_and_reject_an_unlabelled_task():
    model = make_model(problem_type="regression", num_tasks=2, task_names=["logS", "logP"])
    model.set_target_statistics([[1.0, 5.0], [3.0, 5.0], [float("nan"), 5.0]])
    assert torch.allclose(model.target_mean, torch.tensor([2.0, 5.0]))
    # A constant task keeps a tiny positive std, so standardizing its targets cannot divide by zero.
    assert model.target_std[0] == 1.0 and 0 < model.target_std[1] < 1e-3
    with pytest.raises(ValueError, match="task 'logP' has no training labels"):
        model.set_target_statistics([[1.0, float("nan")], [3.0, float("nan")]])


def test_text_embeds_and_input_ids_paths_agree(processor):
    model = make_model().eval()
    batch = processor(smiles=SMILES[:3], return_tensors="pt")
    text_embeds = model.protomol.encode_text(batch["input_ids"], batch["attention_mask"])
    from_ids = model(**batch).logits
    precomputed = {k: v for k, v in batch.items() if k != "input_ids"}
    assert torch.allclose(from_ids, model(**precomputed, text_embeds=text_embeds).logits, atol=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        model(**batch, text_embeds=text_embeds)


def test_attention_probabilities_have_their_own_dropout():
    layer = make_model(attention_dropout=0.3, attention_probs_dropout=0.0).protomol.layers[0]
    assert layer.refiner_layer.self_attn.dropout == 0.0 and layer.cross_modal.atoms_to_tokens.dropout == 0.0
    assert layer.refiner_layer.dropout1.p == layer.refiner_layer.dropout.p == 0.3


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_cpu_dropout_drops_a_fraction_p_and_rescales_the_rest(p):
    states = torch.ones(3, 7, 10_000, requires_grad=True)
    dropped = cpu_dropout(states, p)
    kept = dropped != 0
    assert dropped.shape == states.shape
    assert abs(1 - kept.float().mean().item() - p) < 0.01
    assert torch.allclose(dropped[kept], torch.tensor(1 / (1 - p)))
    dropped.sum().backward()
    assert torch.equal(states.grad != 0, kept)
    torch.manual_seed(0)
    first = cpu_dropout(states, p)
    torch.manual_seed(0)
    assert torch.equal(first, cpu_dropout(states, p))


@pytest.mark.parametrize("float_padding", [False, True])
@pytest.mark.parametrize(
    ("training", "dropout", "need_weights"),
    [(True, 0.1, True), (True, 0.1, False), (True, 0.0, False), (False, 0.1, True), (False, 0.1, False)],
    ids=["train-dropout-weights", "train-dropout", "train-no-dropout", "eval-weights", "eval-fused"],
)
def test_cpu_attention_matches_torch(monkeypatch, float_padding, training, dropout, need_weights):
    # Every CPU path (explicit math for dropout or weights, the fused kernel otherwise) must compute what
    # nn.MultiheadAttention computes, gradients included; the dropout itself is switched off to compare.
    monkeypatch.setattr(modeling_protomol, "cpu_dropout", lambda states, p: states)
    torch.manual_seed(0)
    attention = ProtoMolAttention(16, 4, dropout=dropout, batch_first=True).train(training)
    reference = torch.nn.MultiheadAttention(16, 4, batch_first=True).train(training)
    reference.load_state_dict(attention.state_dict())
    query, key = torch.randn(3, 5, 16, requires_grad=True), torch.randn(3, 7, 16)
    padding = torch.arange(7) >= torch.tensor([[7], [4], [1]])
    if float_padding:
        padding = torch.zeros(3, 7).masked_fill(padding, float("-inf"))
    output, weights = attention(query, key, key, key_padding_mask=padding, need_weights=need_weights)
    (query_grad,) = torch.autograd.grad(output.sum(), query)
    expected, expected_weights = reference(query, key, key, key_padding_mask=padding, need_weights=need_weights)
    (expected_query_grad,) = torch.autograd.grad(expected.sum(), query)
    assert torch.allclose(output, expected, atol=1e-6)
    assert torch.allclose(query_grad, expected_query_grad, atol=1e-5)
    if need_weights:
        assert torch.allclose(weights, expected_weights, atol=1e-6)
    else:
        assert weights is None


def test_refiner_layer_keeps_the_weight_names_of_torch_encoder_layers():
    # Checkpoints saved before ProtoMolRefinerLayer existed hold nn.TransformerEncoderLayer weights.
    reference = torch.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True, norm_first=True)
    layer = ProtoMolRefinerLayer(tiny_config(hidden_size=32, refiner_intermediate_size=64))
    assert layer.state_dict().keys() == reference.state_dict().keys()


def test_attention_never_uses_cudnn_kernels(processor):
    # cuDNN attention plans per input shape (slow with molecule batches); the flag is what torch dispatches on.
    model = make_model().eval()
    seen = []
    for module in (model.protomol.text_model, model.protomol.layers[0].cross_modal):
        module.register_forward_pre_hook(lambda *_: seen.append(torch.backends.cuda.cudnn_sdp_enabled()))
    batch = processor(smiles=SMILES[:2], return_tensors="pt")
    model(**batch)
    model.protomol.encode_text(batch["input_ids"], batch["attention_mask"])
    assert seen == [False, False, False] and torch.backends.cuda.cudnn_sdp_enabled()


def test_refiner_skips_the_unfused_inference_fast_path(processor):
    model = make_model().eval()
    seen = []
    model.protomol.layers[0].refiner_layer.register_forward_pre_hook(
        lambda *_: seen.append(torch.backends.mha.get_fastpath_enabled())
    )
    with torch.no_grad():
        model(**processor(smiles=SMILES[:2], return_tensors="pt"))
    assert seen == [False] and torch.backends.mha.get_fastpath_enabled()


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(processor):
    batch = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0], return_tensors="pt")
    model = make_model(text_model_mode="full").train()
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable()
        model.zero_grad()
        torch.manual_seed(1)
        loss = model(**batch).loss
        loss.backward()
        results.append((loss.detach(), model.predictor.weight.grad.clone()))
    assert model.is_gradient_checkpointing
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)


def test_save_and_load_in_a_process_without_the_package(processor, tmp_path):
    model = make_model(problem_type="regression", num_tasks=2).eval()
    checkpoint = tmp_path / "protomol_checkpoint"  # no dot in the name: remote code needs that
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    with torch.no_grad():
        expected = model(**processor(smiles=SMILES, return_tensors="pt")).logits
    saved = {p.name for p in checkpoint.iterdir()}
    assert {"model.safetensors", "config.json", "processor_config.json", "modeling_protomol.py"} <= saved
    assert {
        "configuration_protomol.py",
        "processing_protomol.py",
        "description_protomol.py",
        "featurization_protomol.py",
        "collating_protomol.py",
    } <= saved
    auto_map = json.loads((checkpoint / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModel"].endswith("ProtoMolForMolecularPropertyPrediction")

    stdout = run_without_protomol_hf(
        f"""
        import json, torch
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(checkpoint)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(checkpoint)!r}, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**processor(smiles={SMILES!r}, return_tensors="pt")).logits
        print(json.dumps({{"class": type(model).__name__, "max_text_length": processor.max_text_length,
                          "logits": logits.tolist()}}))
        """,
        cwd=tmp_path,
    )
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["class"] == "ProtoMolForMolecularPropertyPrediction"
    assert loaded["max_text_length"] == processor.max_text_length
    assert_same_outputs(torch.tensor(loaded["logits"]), expected)


@pytest.mark.parametrize("problem_type", ["classification", "regression"])
def test_reloaded_model_gives_the_same_losses(processor, tmp_path, problem_type):
    """Every training objective, not only the logits, survives save/load: the prototype classes are not saved
    with the weights and must be rebuilt on loading."""
    model = make_model(problem_type=problem_type, num_tasks=2).eval()
    model.save_pretrained(tmp_path / "checkpoint")
    reloaded = ProtoMolForMolecularPropertyPrediction.from_pretrained(tmp_path / "checkpoint").eval()
    assert torch.equal(reloaded.prototype_classes, torch.tensor([0, 0, 0, 1, 1, 1]))
    labels = [[1.0, 0.0], [0.0, NAN], [1.0, 1.0], [0.0, 1.0], [NAN, 0.0], [1.0, 0.0]]
    batch = processor(smiles=SMILES, labels=labels, return_tensors="pt")
    with torch.no_grad():
        expected, actual = model(**batch), reloaded(**batch)
    for name in ("loss", "prediction_loss", "alignment_loss", "contrastive_loss"):
        assert torch.equal(actual[name], expected[name]), name


def test_lora_trains_only_adapters_and_reloads(processor, tmp_path):
    model = make_model(text_model_mode="lora", lora_rank=4).train()
    text_params = dict(model.protomol.text_model.named_parameters())
    trainable_text = {name for name, p in text_params.items() if p.requires_grad}
    assert trainable_text and all("lora_" in name for name in trainable_text)
    assert all(torch.count_nonzero(p) == 0 for name, p in text_params.items() if "lora_B" in name)

    batch = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0], return_tensors="pt")
    frozen_before = {n: p.clone() for n, p in text_params.items() if not p.requires_grad}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    assert any(torch.count_nonzero(p) > 0 for name, p in text_params.items() if "lora_B" in name)
    assert all(torch.equal(p, frozen_before[n]) for n, p in text_params.items() if n in frozen_before)

    model.eval().save_pretrained(tmp_path / "lora_checkpoint")
    reloaded = ProtoMolForMolecularPropertyPrediction.from_pretrained(tmp_path / "lora_checkpoint").eval()
    with torch.no_grad():
        assert_same_outputs(model(**batch).logits, reloaded(**batch).logits)


def test_from_text_pretrained_loads_the_language_model_weights(tmp_path):
    from transformers import AutoModel

    text_model = AutoModel.from_config(tiny_config().text_config)
    text_model.save_pretrained(tmp_path / "text_model")
    for mode in ("frozen", "lora"):
        model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(
            tmp_path / "text_model", hidden_size=32, num_layers=1, num_attention_heads=2, text_model_mode=mode
        )
        loaded = model.protomol.text_model.embeddings.word_embeddings.weight
        assert torch.equal(loaded, text_model.embeddings.word_embeddings.weight)


def test_qwen2_text_model_end_to_end(processor, tmp_path):
    qwen = Qwen2Config(
        vocab_size=30522,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = make_model(text_config=qwen.to_dict(), text_model_mode="full").train()
    assert type(model.protomol.text_model).__name__ == "Qwen2Model"
    batch = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0], return_tensors="pt")
    out = model(**batch)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    model.eval().save_pretrained(tmp_path / "qwen_checkpoint")
    reloaded = ProtoMolForMolecularPropertyPrediction.from_pretrained(tmp_path / "qwen_checkpoint").eval()
    with torch.no_grad():
        assert_same_outputs(model(**batch).logits, reloaded(**batch).logits)


def test_regression_statistics_stay_float32_in_bfloat16(processor, tmp_path):
    """bfloat16 keeps 8 significant bits: a target mean of -1524.9 would become -1528, moving every prediction."""
    model = make_model(problem_type="regression").eval()
    model.set_target_statistics(torch.tensor([[-1400.0], [-1650.0], [-1524.0]]))
    batch = processor(smiles=SMILES, labels=[[-1500.0]] * len(SMILES), return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch)
        half = model.to(torch.bfloat16)
        assert half.predictor.weight.dtype == torch.bfloat16
        assert half.target_mean.dtype == half.target_std.dtype == half.class_boundaries.dtype == torch.float32
        actual = half(**batch)
    assert actual.logits.dtype == torch.float32 and actual.prediction_loss.dtype == torch.float32
    # Only the network's bfloat16 rounding remains: about 1e-2 standardized units, a few target units here.
    torch.testing.assert_close(actual.logits, expected.logits, rtol=0, atol=0.05 * model.target_std.item())
    half.save_pretrained(tmp_path / "bf16")
    for reloaded in (
        ProtoMolForMolecularPropertyPrediction.from_pretrained(tmp_path / "bf16"),
        ProtoMolForMolecularPropertyPrediction.from_pretrained(tmp_path / "bf16", dtype=torch.bfloat16),
    ):
        assert reloaded.target_mean.dtype == torch.float32
        assert torch.equal(reloaded.target_mean, model.target_mean)


def test_base_model_loads_from_a_head_checkpoint_and_checks_its_own_weights(tmp_path):
    make_model(problem_type="regression").save_pretrained(tmp_path / "head")
    base, info = ProtoMolModel.from_pretrained(tmp_path / "head", output_loading_info=True)
    assert "predictor.weight" in info["unexpected_keys"] and isinstance(base, ProtoMolModel)
    with pytest.raises(ValueError, match=r"protomol\.layers\.1\..* is in the checkpoint but not in the model"):
        ProtoMolModel.from_pretrained(tmp_path / "head", num_layers=1)


def test_top_k_keeps_exactly_k_prototypes_even_with_ties():
    log_probs = top_k_log_probs(torch.tensor([[3.0, 2.0, 2.0, 2.0, 1.0, 0.0]]), 2)
    assert torch.isfinite(log_probs).sum() == 2 and torch.isfinite(log_probs[0, 0])


def test_frozen_text_model_stays_in_eval_mode_while_training(processor):
    """Its dropout would give one text different states at every step, unlike the cached ones."""
    model = make_model().train()
    assert model.protomol.layers.training and not model.protomol.text_model.training
    batch = processor(smiles=SMILES[:2], return_tensors="pt")
    first, second = (model.protomol.encode_text(batch["input_ids"], batch["attention_mask"]) for _ in range(2))
    assert torch.equal(first, second)
    assert make_model(text_model_mode="full").train().protomol.text_model.training


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"text_model_mode": "lora", "lora_rank": 2},
        {"text_model_mode": "full"},
        {"branches": "graph", "cross_attention": "none"},
        {"branches": "text", "cross_attention": "none"},
    ],
)
def test_every_trainable_parameter_gets_a_gradient(processor, options):
    """DDP without `find_unused_parameters` fails at the second step when one does not."""
    model = make_model(**options).train()
    batch = processor(smiles=SMILES, labels=[1, 0, 1, 0, 1, 0], return_tensors="pt")
    model(**batch).loss.backward()
    idle = [name for name, parameter in model.named_parameters() if parameter.requires_grad and parameter.grad is None]
    assert idle == []


def test_base_model_returns_summaries_without_head(processor):
    model = ProtoMolModel(tiny_config()).eval()
    out = model(**processor(smiles=SMILES[:2], return_tensors="pt"))
    assert out.graph_embeds.shape == out.text_pooled_embeds.shape == (2, 32)
    assert "loss" not in out


def test_prototypes_do_not_collapse_on_a_separable_toy_task(tokenizer):
    from protomol_hf import ProtoMolProcessor

    # Class 1: molecules with a halogen; class 0: plain hydrocarbons/alcohols. Text = SMILES.
    positives = ["CCCl", "ClCCCl", "CC(Cl)C", "c1ccccc1Cl", "CCBr", "BrCCBr", "c1ccccc1Br", "ClC(Cl)Cl"]
    negatives = ["CCC", "CCCC", "CC(C)C", "c1ccccc1", "CCO", "OCCO", "c1ccccc1O", "CC(C)O"]
    processor = ProtoMolProcessor(tokenizer, text_source="smiles", max_text_length=16)
    batch = processor(smiles=positives + negatives, labels=[1] * 8 + [0] * 8, return_tensors="pt")
    model = make_model(contrastive_loss_weight=1.0).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    classes = model.prototype_classes
    for similarities in (out.graph_prototype_similarities, out.text_prototype_similarities):
        nearest_class = classes[similarities[:, 0].argmax(-1)]
        assert (nearest_class == batch["labels"][:, 0].long()).float().mean() >= 0.9
    # Each class keeps prototypes that are nearest to some molecule: not all molecules share one anchor.
    assert len(set(classes[out.graph_prototype_similarities[:, 0].argmax(-1)].tolist())) == 2
