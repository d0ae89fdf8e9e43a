#!/usr/bin/env python
"""Publish a trained ProtoMol folder (an output of scripts/train.py) on the Hugging Face Hub.

Stages the weights, config, processor files, the checkpoint's code (*.py), results.json, split.json
and a model card (README.md, rendered from them by protomol_hf.model_card); checks that the staged
folder loads with AutoModel/AutoProcessor.from_pretrained(..., trust_remote_code=True) in a fresh
Python in which protomol_hf cannot be imported, and that it predicts what this package predicts; then
creates the repository if needed and uploads the folder with the token of `hf auth login` or HF_TOKEN.
A second commit pins the card's loading snippet to the commit holding the uploaded code and weights.

Examples:
    python scripts/push_to_hub.py --model_dir runs/bace --repo_id my-org/protomol-bace
    python scripts/push_to_hub.py --model_dir runs/bace --repo_id my-org/protomol-bace --dry_run --stage_dir staged
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.errors import HfHubHTTPError

import protomol_hf
from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.model_card import check_model_card, render_model_card

# Top-level files of a training output folder that belong in the Hub repository (README.md is rendered).
STAGED_PATTERNS = (
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "processor_config.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
    "*.py",
    "results.json",
    "split.json",
)
# Molecules the staged folder must predict exactly as this package does; the last one must fail per row.
CHECK_SMILES = ("CC(=O)Oc1ccccc1C(=O)O", "c1ccc2[nH]ccc2c1", "CN1CCC[C@H]1c1cccnc1", "[Na+].[Cl-]", "not_a_smiles")
_ISOLATED_PREDICT = """
import json, sys
sys.modules["protomol_hf"] = None  # any import of the package fails, as where only the Hub repository exists
from transformers import AutoModel, AutoProcessor
folder, inputs = sys.argv[1], json.loads(sys.argv[2])
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
print(json.dumps(model.predict(inputs["smiles"], processor, text=inputs["texts"])))
"""


class StagingError(RuntimeError):
    """The staged folder is not a repository that works without protomol_hf."""


def stage_files(model_dir: Path, stage_dir: Path, refresh_code: bool = False) -> list[str]:
    """Copy the repository files of `model_dir` into `stage_dir`; with `refresh_code` the code files are this
    package's current copies instead of the checkpoint's. Returns the staged file names."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    for pattern in STAGED_PATTERNS:
        for path in model_dir.glob(pattern):
            if path.is_file():
                source = (
                    Path(protomol_hf.__file__).parent / path.name if refresh_code and path.suffix == ".py" else path
                )
                shutil.copy2(source, stage_dir / path.name)
    return sorted(path.name for path in stage_dir.iterdir())


def predict_without_protomol_hf(folder, smiles, texts=None) -> list[dict]:
    """`model.predict(smiles, processor, text=texts)` of `folder`, loaded with trust_remote_code in a fresh
    offline Python in which protomol_hf cannot be imported."""
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_MODULES_CACHE=scratch)
        inputs = json.dumps({"smiles": list(smiles), "texts": texts})
        command = [sys.executable, "-c", _ISOLATED_PREDICT, str(Path(folder).resolve()), inputs]
        result = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise StagingError(f"{folder} does not load and predict without protomol_hf:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.splitlines()[-1])


def _same_prediction(expected: dict, actual: dict) -> bool:
    if expected["error"] != actual["error"] or (expected["predictions"] is None) != (actual["predictions"] is None):
        return False
    return expected["predictions"] is None or all(
        math.isclose(value, actual["predictions"][task], rel_tol=1e-5, abs_tol=1e-6)
        for task, value in expected["predictions"].items()
    )


def check_staged_folder(model_dir: Path, stage_dir: Path, smiles=CHECK_SMILES) -> list[dict]:
    """Check that `stage_dir` predicts `smiles` as `model_dir` loaded with this package does (per-row errors
    included); returns the predictions."""
    modeling_file = stage_dir / "modeling_protomol.py"
    if not modeling_file.is_file() or "def predict(" not in modeling_file.read_text(encoding="utf-8"):
        raise StagingError(
            f"{model_dir} holds no modeling_protomol.py with model.predict (saved by an older protomol_hf): "
            "rerun with --refresh_code to stage this package's code"
        )
    model = ProtoMolForMolecularPropertyPrediction.from_pretrained(model_dir)
    processor = ProtoMolProcessor.from_pretrained(model_dir)
    # A model trained on given texts needs one per molecule: the SMILES stands in for both sides of the check.
    texts = list(smiles) if processor.text_source == "given" else None
    expected = model.predict(list(smiles), processor, text=texts)
    actual = predict_without_protomol_hf(stage_dir, smiles, texts)
    for want, got in zip(expected, actual, strict=True):
        if not _same_prediction(want, got):
            raise StagingError(f"the staged folder predicts {got} where protomol_hf predicts {want}")
    return expected


# What the Hub client raises when a request fails: its HTTP errors, whose base class (the HTTP library's error,
# also raised for a failed connection) depends on the huggingface_hub version, and OSError (offline mode).
HUB_ERRORS = (OSError, *HfHubHTTPError.__bases__)


class UploadError(RuntimeError):
    """A step of the upload failed; the message says which, and what is already on the Hub."""


def upload(stage_dir: Path, model_dir: Path, repo_id: str, private: bool, branch: str | None) -> str:
    """Upload `stage_dir` to `repo_id` (on `branch`), then pin the card's snippet to that commit; returns it."""
    api = HfApi()
    step = f"creating the repository {repo_id}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch:
            step = f"creating the branch {branch}"
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        step = "uploading the model (nothing was uploaded)"
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=stage_dir,
            revision=branch,
            commit_message="Upload ProtoMol model, code and card",
        )
        step = f"pinning the card's loading snippet to {commit.oid[:12]} (the model itself is uploaded)"
        card = render_model_card(model_dir, repo_id=repo_id, revision=commit.oid)
        api.upload_file(
            path_or_fileobj=card.encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            revision=branch,
            commit_message=f"Model card: pin the loading snippet to {commit.oid[:12]}",
        )
    except HUB_ERRORS as error:
        raise UploadError(f"{step} failed: {type(error).__name__}: {error}") from error
    return commit.oid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model_dir", required=True, help="Output folder of scripts/train.py (with config.json and results.json)."
    )
    parser.add_argument("--repo_id", required=True, help="Hub repository, ORG/NAME (created if missing).")
    parser.add_argument(
        "--private",
        action="store_true",
        help="Create the repository as private (an existing one keeps its visibility).",
    )
    parser.add_argument(
        "--revision", default=None, metavar="BRANCH", help="Branch to upload to, created if missing (default: main)."
    )
    parser.add_argument(
        "--dry_run", action="store_true", help="Stage, render and check everything but upload nothing (no network)."
    )
    parser.add_argument(
        "--stage_dir", default=None, help="Empty or new folder to stage into and keep (default: a temporary folder)."
    )
    parser.add_argument(
        "--refresh_code",
        action="store_true",
        help="Stage this package's current *.py files instead of the checkpoint's own copies (for checkpoints saved "
        "by an older protomol_hf, e.g. without model.predict).",
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model_dir = Path(args.model_dir)
    missing = [name for name in ("config.json", "results.json") if not (model_dir / name).is_file()]
    if missing:
        parser.error(f"{model_dir} has no {' or '.join(missing)}: give an output folder of scripts/train.py")
    if args.stage_dir and Path(args.stage_dir).is_dir() and any(Path(args.stage_dir).iterdir()):
        parser.error(f"--stage_dir {args.stage_dir} is not empty")
    if not args.dry_run and constants.HF_HUB_OFFLINE:
        parser.error("HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it, or use --dry_run")
    if not args.dry_run and get_token() is None:
        parser.error("no Hugging Face token: run `hf auth login` or set HF_TOKEN (or use --dry_run)")

    with tempfile.TemporaryDirectory(prefix="protomol_stage_") as temporary:
        stage_dir = Path(args.stage_dir or temporary)
        staged = stage_files(model_dir, stage_dir, refresh_code=args.refresh_code)
        card = render_model_card(model_dir, repo_id=args.repo_id)
        check_model_card(card)
        (stage_dir / "README.md").write_text(card, encoding="utf-8")
        print(f"Staged {', '.join([*staged, 'README.md'])} in {stage_dir}")
        try:
            predictions = check_staged_folder(model_dir, stage_dir)
        except StagingError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"Checked: loads without protomol_hf and predicts as protomol_hf for {len(predictions)} molecules")
        if args.dry_run:
            print(f"Dry run: nothing uploaded to {args.repo_id}")
            return 0
        try:
            commit = upload(stage_dir, model_dir, args.repo_id, args.private, args.revision)
        except UploadError as error:  # one line, not a traceback through the HTTP client
            print(
                f"error: {error}\nThe staged folder passed its checks: `--dry_run --stage_dir DIR` keeps one, which "
                f"`hf upload {args.repo_id} DIR` uploads as it is.",
                file=sys.stderr,
            )
            return 1
    print(f"Uploaded to https://huggingface.co/{args.repo_id} (code and weights at commit {commit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
