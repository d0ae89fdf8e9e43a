"""ProtoMol around a Qwen2-family text model trained with LoRA adapters (text_model_mode="lora").

    python examples/larger_text_model_with_lora.py                       # a tiny random Qwen2, offline
    python examples/larger_text_model_with_lora.py --text_model_dir path/to/Qwen2.5-0.5B --steps 20
Only the LoRA adapters of the text model train, with ProtoMol's own layers. To train on a dataset:
`scripts/train.py --text_model path/to/Qwen2.5-0.5B --text_model_mode lora ...`.
"""

import argparse
import tempfile

import torch
from transformers import AutoModel, AutoTokenizer, Qwen2Config

from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.loading import resolve_text_model

SMILES = ["CCCl", "ClCCCl", "c1ccccc1Cl", "CCBr", "CCC", "CCCC", "c1ccccc1", "CCO"]
LABELS = [1, 1, 1, 1, 0, 0, 0, 0]  # halogenated or not


def save_tiny_qwen2(folder):
    """A 2-layer random Qwen2 with the MiniLM tokenizer (any tokenizer suits random weights), saved like a
    pretrained text model; returns the folder."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model("minilm"))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    AutoModel.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--text_model_dir", default=None, help="Local Qwen2/Qwen2.5 folder (default: a tiny random Qwen2).")
parser.add_argument("--lora_rank", type=int, default=8)
parser.add_argument("--steps", type=int, default=5, help="Optimizer steps on the toy batch.")
args = parser.parse_args()

with tempfile.TemporaryDirectory() as scratch:
    text_model_dir = args.text_model_dir or save_tiny_qwen2(scratch)
    model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(
        text_model_dir, text_model_mode="lora", lora_rank=args.lora_rank, task_names=["halogenated"]
    )
    processor = ProtoMolProcessor(AutoTokenizer.from_pretrained(text_model_dir), max_text_length=128)

text_parameters = dict(model.protomol.text_model.named_parameters())
trainable_text = sum(p.numel() for name, p in text_parameters.items() if p.requires_grad)
trainable_other = sum(p.numel() for p in model.parameters() if p.requires_grad) - trainable_text
print(
    f"text model {type(model.protomol.text_model).__name__}: {sum(p.numel() for p in text_parameters.values()):,} "
    f"parameters, {trainable_text:,} trainable (LoRA rank {args.lora_rank}); ProtoMol's own: {trainable_other:,}"
)

batch = processor(smiles=SMILES, labels=LABELS, return_tensors="pt")
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
model.train()
for step in range(args.steps):
    optimizer.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    print(f"step {step + 1}: loss {loss.item():.4f}")
for row in model.predict(SMILES[:2], processor):
    print(row)
