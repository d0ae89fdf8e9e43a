"""ProtoMolTrainer: a non-finite loss stops training with the step and the broken term named."""

import pytest
import torch
from conftest import SMILES, tiny_config
from transformers import TrainingArguments

from protomol_hf import ProtoMolForMolecularPropertyPrediction
from protomol_hf.training import ProtoMolTrainer


def test_nan_loss_stops_training_naming_the_step_and_component(processor, tmp_path):
    model = ProtoMolForMolecularPropertyPrediction(tiny_config()).train()
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = ProtoMolTrainer(model=model, args=args)
    batch = processor(smiles=SMILES[:4], labels=[1, 0, 1, 0], return_tensors="pt")
    assert torch.isfinite(trainer.compute_loss(model, batch))

    with torch.no_grad():
        model.predictor.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match=r"step 1: .*prediction_loss=nan"):
        trainer.compute_loss(model, batch)
