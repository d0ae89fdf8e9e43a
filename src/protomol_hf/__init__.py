"""protomol_hf: ProtoMol molecular property prediction (graph + text, prototypes) on transformers."""

from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoProcessor

from .collating_protomol import ProtoMolDataCollator
from .configuration_protomol import ProtoMolConfig
from .description_protomol import canonical_smiles, describe_molecule
from .featurization_protomol import (
    FeaturizationFailure,
    ProtoMolFeaturizationError,
    mol_to_graph,
    parse_molecule,
    smiles_to_graph,
)
from .modeling_protomol import (
    ProtoMolForMolecularPropertyPrediction,
    ProtoMolModel,
    ProtoMolModelOutput,
    ProtoMolPreTrainedModel,
    ProtoMolPropertyPredictionOutput,
)
from .processing_protomol import ProtoMolProcessor

__version__ = "0.1.0"

AutoConfig.register("protomol", ProtoMolConfig, exist_ok=True)
# A ProtoMol checkpoint is a property predictor: AutoModel gives the class with the head, here and
# in remote code (auto_map), so that `AutoModel.from_pretrained(...)` predicts either way.
AutoModel.register(ProtoMolConfig, ProtoMolForMolecularPropertyPrediction, exist_ok=True)
AutoModelForSequenceClassification.register(ProtoMolConfig, ProtoMolForMolecularPropertyPrediction, exist_ok=True)
AutoProcessor.register(ProtoMolConfig, ProtoMolProcessor, exist_ok=True)

# What `save_pretrained` copies into a checkpoint and writes to `auto_map`, for remote-code loading.
ProtoMolConfig.register_for_auto_class()
ProtoMolForMolecularPropertyPrediction.register_for_auto_class("AutoModel")
ProtoMolProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "FeaturizationFailure",
    "ProtoMolConfig",
    "ProtoMolDataCollator",
    "ProtoMolFeaturizationError",
    "ProtoMolForMolecularPropertyPrediction",
    "ProtoMolModel",
    "ProtoMolModelOutput",
    "ProtoMolPreTrainedModel",
    "ProtoMolProcessor",
    "ProtoMolPropertyPredictionOutput",
    "canonical_smiles",
    "describe_molecule",
    "mol_to_graph",
    "parse_molecule",
    "smiles_to_graph",
]
