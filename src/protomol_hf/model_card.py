"""Model card (the Hub repository's README.md) for a folder written by `scripts/train.py`.

`render_model_card(model_dir)` fills the Jinja template model_card_template.md beside this file (the one
source of the card's wording, shipped as package data) from the
folder's results.json, config.json, split.json and processor_config.json. `check_model_card(text)`
parses a card the way `huggingface_hub` does and checks its metadata, offline.
"""

import importlib.metadata
import json
import math
import platform
import re
from importlib import resources
from os import PathLike
from pathlib import Path

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .configuration_protomol import DEFAULT_TEXT_CONFIG
from .data import MOLECULENET_DATASETS

# Package data (setup.cfg): the card renders from an installed wheel as from a checkout.
TEMPLATE_PATH = Path(str(resources.files("protomol_hf") / "model_card_template.md"))
PLACEHOLDER_REPO_ID = "ORG/NAME"
PLACEHOLDER_REVISION = "COMMIT_SHA"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
LICENSE = "apache-2.0"
TAGS = ["chemistry", "molecular-property-prediction", "protomol", "custom_code"]
# The Hub has no molecule task. A ProtoMol checkpoint maps one record (a SMILES string) to one value per
# label column, which is what the tabular tasks describe; a text task would advertise free-text input and
# an inference widget that cannot run this custom code.
PIPELINE_TAGS = {"classification": "tabular-classification", "regression": "tabular-regression"}
METRIC_LABELS = {"roc_auc": "ROC-AUC", "rmse": "RMSE", "mae": "MAE"}
# results.json test metrics that go into model-index: the mean over tasks, or one task's value.
_TEST_METRIC_KEY = re.compile(r"(roc_auc|rmse|mae)(?:_(.+))?")
# What a checkpoint needs besides its own code (pip names); LoRA text models also need peft.
RUNTIME_PACKAGES = ("torch", "transformers", "torch-geometric", "rdkit")
TEXT_SOURCE_DESCRIPTIONS = {
    "template": "a deterministic RDKit description (formula, weight, logP, TPSA, rings, functional groups) "
    "that the processor writes itself",
    "smiles": "the molecule's canonical SMILES (RDKit), whatever way the input SMILES was written",
    "given": "supplied by the caller: pass `text=[...]` (one description per molecule, written like the "
    "training texts) to `model.predict`",
}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: render_model_card needs a folder written by scripts/train.py")
    return json.loads(path.read_text(encoding="utf-8"))


def base_model_id(text_config: dict) -> str | None:
    """Hub id of the pretrained text model: its recorded name when that is a Hub id, all-MiniLM-L6-v2 when the
    text model has MiniLM's shape (the default, loaded from a local package folder), else None."""
    name = text_config.get("_name_or_path", "")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name) and not Path(name).exists():
        return name
    if all(text_config.get(key) == value for key, value in DEFAULT_TEXT_CONFIG.items()):
        return MINILM_HUB_ID
    return None


def tested_versions(text_model_mode: str) -> list[tuple[str, str]]:
    """(name, installed version) of Python and of each package a checkpoint needs to load."""
    packages = RUNTIME_PACKAGES + (("peft",) if text_model_mode == "lora" else ())
    return [("python", platform.python_version())] + [(name, importlib.metadata.version(name)) for name in packages]


def eval_results_on_test(results: dict, pipeline_tag: str, dataset_type: str, dataset_name: str) -> list[EvalResult]:
    """One `EvalResult` per finite test score of results.json (mean over tasks, and per task when several)."""
    evaluations = []
    for key, value in results["test"].items():
        match = _TEST_METRIC_KEY.fullmatch(key)
        if match is None or not math.isfinite(value):
            continue
        metric, task = match.groups()
        evaluations.append(
            EvalResult(
                task_type=pipeline_tag,
                task_name="Molecular property prediction",
                dataset_type=dataset_type,
                dataset_name=dataset_name,
                dataset_config=results["split"],
                dataset_split="test",
                metric_type=metric,
                metric_value=value,
                metric_name=f"Test {METRIC_LABELS[metric]}" + (f" ({task})" if task else ""),
            )
        )
    return evaluations


def _split_sizes(model_dir: Path, results: dict) -> dict:
    """Molecules per part, counted from split.json when present."""
    split_file = model_dir / "split.json"
    if not split_file.is_file():
        return results["num_molecules"]
    split = json.loads(split_file.read_text(encoding="utf-8"))
    return {part: len(split[part]) for part in ("train", "valid", "test")}


def _describe_text_model(text_config: dict, base_model: str | None) -> str:
    if base_model:
        return f"`{base_model}`"
    layers, width = text_config.get("num_hidden_layers"), text_config.get("hidden_size")
    return f"a {text_config['model_type']} language model ({layers} layers, hidden size {width})"


def _split_kind(split_name: str) -> str:
    if "scaffold" in split_name:
        return "scaffold"
    return "random" if split_name.startswith("random") else "custom"


def render_model_card(
    model_dir: str | PathLike[str],
    repo_id: str = PLACEHOLDER_REPO_ID,
    revision: str = PLACEHOLDER_REVISION,
    template_path: Path = TEMPLATE_PATH,
) -> str:
    """The model card (YAML metadata + Markdown) of the trained ProtoMol in `model_dir`, showing how to load it
    from `repo_id` at `revision` (the commit that holds its code and weights)."""
    model_dir = Path(model_dir)
    results = _read_json(model_dir / "results.json")
    config = _read_json(model_dir / "config.json")
    processor_file = model_dir / "processor_config.json"
    processor_config = json.loads(processor_file.read_text(encoding="utf-8")) if processor_file.is_file() else {}
    if not Path(template_path).is_file():
        raise FileNotFoundError(f"model card template not found at {template_path}")

    problem_type, metric = results["task_type"], results["metric"]
    pipeline_tag = PIPELINE_TAGS[problem_type]
    dataset = results["dataset"]
    is_moleculenet = dataset in MOLECULENET_DATASETS
    dataset_type = dataset if is_moleculenet else Path(dataset).name.split(".")[0]
    dataset_display = f"MoleculeNet {MOLECULENET_DATASETS[dataset].display_name}" if is_moleculenet else dataset
    model_name = repo_id.split("/")[-1] if repo_id != PLACEHOLDER_REPO_ID else model_dir.resolve().name
    text_config = config["text_config"]
    base_model = base_model_id(text_config)
    versions = tested_versions(config["text_model_mode"])
    evaluations = eval_results_on_test(results, pipeline_tag, dataset_type, dataset_display)

    card_data = ModelCardData(
        license=LICENSE,
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=TAGS + (["moleculenet"] if is_moleculenet else []),
        datasets=[dataset] if is_moleculenet else None,
        metrics=[metric],
        base_model=base_model,
        model_name=model_name,
        eval_results=evaluations or None,
    )
    context = dict(
        model_name=model_name,
        repo_id=repo_id,
        revision=revision,
        problem_type=problem_type,
        task_names=config["task_names"],
        output_description="probability of the positive class"
        if problem_type == "classification"
        else "predicted value, in the units of the training labels",
        dataset_display=dataset_display,
        is_moleculenet=is_moleculenet,
        split_name=results["split"],
        split_kind=_split_kind(results["split"]),
        num_molecules=_split_sizes(model_dir, results),
        num_excluded=len(results.get("excluded_rows", [])),
        metric_label=METRIC_LABELS[metric],
        better="higher" if metric == "roc_auc" else "lower",
        valid_score=results["valid"][metric],
        test_score=results["test"][metric],
        best_epoch=results.get("best_epoch"),
        text_model_description=_describe_text_model(text_config, base_model),
        text_model_mode=config["text_model_mode"],
        text_source_description=TEXT_SOURCE_DESCRIPTIONS[processor_config.get("text_source", "template")],
        pip_requirements=[f'"{name}=={version.split("+")[0]}"' for name, version in versions[1:]],
        tested_versions=versions,
    )
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = environment.from_string(Path(template_path).read_text(encoding="utf-8"))
    return template.render(card_data=card_data.to_yaml(), **context)


def check_model_card(text: str) -> ModelCard:
    """Parse `text` with `huggingface_hub.ModelCard` (malformed YAML or model-index raise ValueError) and check
    the metadata a ProtoMol card needs. Offline: `ModelCard.validate()` would post the card to the Hub."""
    card = ModelCard(text)
    data = card.data
    assert isinstance(data, ModelCardData)  # ModelCard's card_data_class; the attribute is typed as the base class
    problems = []
    if data.license != LICENSE:
        problems.append(f"license is {data.license!r}, expected {LICENSE!r}")
    if data.library_name != "transformers":
        problems.append(f"library_name is {data.library_name!r}, expected 'transformers'")
    if data.pipeline_tag not in PIPELINE_TAGS.values():
        problems.append(f"pipeline_tag {data.pipeline_tag!r} is not one of {sorted(PIPELINE_TAGS.values())}")
    missing_tags = set(TAGS) - set(data.tags or [])
    if missing_tags:
        problems.append(f"tags lack {sorted(missing_tags)}")
    for result in data.eval_results or []:
        if not isinstance(result.metric_value, float) or not math.isfinite(result.metric_value):
            problems.append(
                f"model-index value {result.metric_value!r} of {result.metric_name!r} is not a finite number"
            )
    if problems:
        raise ValueError("model card metadata: " + "; ".join(problems))
    return card


__all__ = ["base_model_id", "check_model_card", "eval_results_on_test", "render_model_card", "tested_versions"]
