"""benchmarks.chemprop.baseline's bookkeeping (a fresh run, an interrupted one resumed, --from_scratch), against a
fake chemprop environment: chemprop itself lives in its own virtual environment, which CI does not build."""

import os
import sys
import textwrap

import pytest

from benchmarks.chemprop import baseline

# Stands for benchmarks/chemprop/train_wrapper.py run by chemprop's Python: writes what chemprop and the wrapper
# write (the wrapper's every-epoch checkpoint, which holds its clock, and chemprop's last.ckpt, then the test
# predictions, best.pt and the clock file), or stops after the checkpoints.
FAKE_CHEMPROP_PYTHON = """
import json, os, sys
from pathlib import Path

import pandas as pd

args = sys.argv[2:]
chemprop_args = args[args.index("--") + 1 :]
option = lambda name: chemprop_args[chemprop_args.index(name) + 1]
wrapper_args = args[: args.index("--")]
resumed = "--resume_from" in wrapper_args
model_dir = Path(option("-o")) / "model_0"
(model_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
(model_dir / "trainer_logs" / f"version_{int(resumed)}").mkdir(parents=True, exist_ok=True)
(model_dir / "trainer_logs" / f"version_{int(resumed)}" / "hparams.yaml").touch()
print("resumed attempt" if resumed else "fresh attempt", " - MPNN(", flush=True)
(model_dir / "checkpoints" / "last.ckpt").touch()
Path(wrapper_args[wrapper_args.index("--epoch_checkpoint") + 1]).touch()
(model_dir / "checkpoints" / "best-epoch=1-val_loss=0.50.ckpt").touch()
if os.environ.get("FAKE_CHEMPROP_INTERRUPT"):
    sys.exit("killed after the epoch-2 checkpoint")
table = pd.read_csv(option("-i"))
test_rows = json.loads(Path(option("--splits-file")).read_text())[0]["test"]
table.iloc[test_rows].to_csv(model_dir / "test_predictions.csv", index=False)  # the labels: ROC-AUC 1
print("Test Set results", flush=True)
(model_dir / "best.pt").touch()
# Only the wrapper's checkpoint holds its clock; for chemprop's own the wrapper starts from --unclocked_train_s.
if not resumed:
    restored = None
elif wrapper_args[wrapper_args.index("--resume_from") + 1].endswith("epoch_end.ckpt"):
    restored = 20.0
else:
    restored = float(wrapper_args[wrapper_args.index("--unclocked_train_s") + 1])
clock = {"train_s": 30.0, "resumed_train_s": restored, "epochs": 3, "resumed_epochs": 2 if resumed else 0}
Path(args[args.index("--clock_file") + 1]).write_text(json.dumps(clock))
"""

# `chemprop --version` and `chemprop predict` (a constant prediction for BACE's one task).
FAKE_CHEMPROP = """
import sys

import pandas as pd

if sys.argv[1] == "--version":
    print("chemprop 2.3.1")
else:
    smiles = pd.read_csv(sys.argv[sys.argv.index("-i") + 1])["smiles"]
    pd.DataFrame({"smiles": smiles, "Class": 0.5}).to_csv(sys.argv[sys.argv.index("-o") + 1], index=False)
"""


@pytest.fixture
def bench_chemprop(tmp_path):
    """benchmarks.chemprop.baseline's main, running the fake chemprop environment, with its output in `tmp_path`;
    returns a function of extra arguments that returns the record."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    for name, source in (("python", FAKE_CHEMPROP_PYTHON), ("chemprop", FAKE_CHEMPROP)):
        (venv_bin / name).write_text(f"#!{sys.executable}\n{textwrap.dedent(source)}")
        (venv_bin / name).chmod(0o755)
    common = ["--dataset_name", "bace", "--chemprop", str(venv_bin / "chemprop")]
    common += ["--output_dir", str(tmp_path / "runs"), "--results", str(tmp_path / "chemprop.jsonl")]
    return lambda *extra: baseline.main([*common, *extra])


def run_folder(tmp_path):
    return tmp_path / "runs" / "bace" / "random_0" / "seed_0"


def test_a_fresh_run_is_recorded_without_resume(bench_chemprop, tmp_path):
    record = bench_chemprop()
    assert record["value"] == 1.0 and record["valid_value"] == 0.5 and record["best_epoch"] == 2
    assert record["epochs"] == 3 and record["resumed_from"] is None and record["resumed_train_s"] == 0.0
    assert "--resume_from" not in record["chemprop_command"]
    assert "fresh attempt" in (run_folder(tmp_path) / "train.log").read_text()


@pytest.mark.parametrize("wrapped", [True, False], ids=["through_the_wrapper", "chemprop_cli"])
def test_an_interrupted_run_resumes_from_its_last_checkpoint(bench_chemprop, tmp_path, monkeypatch, wrapped):
    monkeypatch.setenv("FAKE_CHEMPROP_INTERRUPT", "1")
    with pytest.raises(RuntimeError, match="killed after the epoch-2 checkpoint"):
        bench_chemprop()
    checkpoints = run_folder(tmp_path) / "train" / "model_0" / "checkpoints"
    if not wrapped:  # chemprop's own command line leaves only its last.ckpt, without the clock
        (checkpoints / "epoch_end.ckpt").unlink()
    # Without the clock the training before the checkpoint is timed from the files: 100 s here.
    checkpoint_time = (checkpoints / "last.ckpt").stat().st_mtime
    os.utime(checkpoints.parent / "trainer_logs" / "version_0" / "hparams.yaml", (checkpoint_time - 100,) * 2)
    monkeypatch.delenv("FAKE_CHEMPROP_INTERRUPT")

    record = bench_chemprop()
    resumed_train_s = 20.0 if wrapped else pytest.approx(100.0, abs=0.01)
    assert record["resumed_from"] == "epoch 2" and record["resumed_train_s"] == resumed_train_s
    resumed_checkpoint = checkpoints / ("epoch_end.ckpt" if wrapped else "last.ckpt")
    assert f"--resume_from {resumed_checkpoint}" in record["chemprop_command"] and record["epochs"] == 3
    assert record["wall_s"] > record["resumed_train_s"]
    log = (run_folder(tmp_path) / "train.log").read_text()
    assert "fresh attempt" in log and "resumed attempt" in log  # appended, not replaced


def test_from_scratch_starts_an_interrupted_run_over(bench_chemprop, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CHEMPROP_INTERRUPT", "1")
    with pytest.raises(RuntimeError):
        bench_chemprop()
    monkeypatch.delenv("FAKE_CHEMPROP_INTERRUPT")
    record = bench_chemprop("--from_scratch")
    assert record["resumed_from"] is None and "--resume_from" not in record["chemprop_command"]
    assert "resumed attempt" not in (run_folder(tmp_path) / "train.log").read_text()


def test_a_finished_run_is_not_resumed(bench_chemprop):
    bench_chemprop()
    assert bench_chemprop()["resumed_from"] is None
