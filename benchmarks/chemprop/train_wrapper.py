"""`chemprop train` that can resume: chemprop's own command line, with a clock and a resume option added.

chemprop's command line cannot resume an interrupted training (chemprop/chemprop#1039), and chemprop's
defaults on MUV take about 1 h 45 min on 2 CPU cores. benchmarks.chemprop.baseline therefore runs
`chemprop train` through this script, with the Python of chemprop's virtual environment, by its file path:
that environment has neither benchmarks nor protomol_hf, so this script imports only chemprop, Lightning and
the standard library. It
  * adds a checkpoint written at the end of every epoch, to --epoch_checkpoint (chemprop's own, best-*.ckpt
    and last.ckpt, are written only when the validation loss improves, so they may lie many epochs back);
  * adds a training clock to chemprop's Lightning trainer: the seconds from the start of training, kept in
    every checkpoint and restored from it;
  * with --resume_from CKPT, has the trainer's `fit` restore everything from CKPT (model, optimizer, learning
    rate schedule, epoch, and the checkpoint and early-stopping callbacks) before it goes on; a CKPT without the
    clock (saved by chemprop's own command line) restores none, and the clock starts from --unclocked_train_s;
  * writes to --clock_file, when training ends, {"train_s": the training seconds of the whole run,
    "resumed_train_s": those before CKPT (from its clock, else --unclocked_train_s; null if neither),
    "epochs": the epochs trained in all, "resumed_epochs": those that came from CKPT}.
Everything else is chemprop's own: the arguments after `--` are those of `chemprop train`, for one model
(chemprop's default ensemble size of 1: the clock and the checkpoint belong to one training).

    .venv-chemprop/bin/python benchmarks/chemprop/train_wrapper.py --clock_file clock.json \\
        --epoch_checkpoint epoch.ckpt -- -i data.csv -t regression
    .venv-chemprop/bin/python benchmarks/chemprop/train_wrapper.py --clock_file clock.json \\
        --epoch_checkpoint epoch.ckpt --resume_from epoch.ckpt -- -i data.csv -t regression
"""

import argparse
import json
import sys
import time
from pathlib import Path

from chemprop.cli.main import main as chemprop_main
from lightning import pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class ChempropTrainingClock(pl.Callback):
    """Seconds and epochs of training, carried through checkpoints (a Lightning callback's state is saved with
    them; the trainer restores the epoch count itself)."""

    def __init__(self, unclocked_s: float | None = None):
        # A checkpoint's clock, restored by load_state_dict, replaces the caller's figure for an unclocked one.
        self.restored_s = unclocked_s
        self.resumed_s = None
        self.started = None
        self.elapsed_s = None
        self.resumed_epochs = self.epochs = 0

    def on_train_start(self, trainer, pl_module):
        self.started = time.perf_counter()
        # Taken now: chemprop's test prediction restores the best checkpoint, and this state with it, afterwards.
        self.resumed_s = self.restored_s
        self.resumed_epochs = trainer.current_epoch

    def on_train_end(self, trainer, pl_module):
        self.elapsed_s = self._elapsed_now()
        self.epochs = trainer.current_epoch

    def _elapsed_now(self) -> float:
        return (self.resumed_s or 0.0) + time.perf_counter() - self.started

    def state_dict(self) -> dict:
        return {"train_s": self._elapsed_now()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.restored_s = state_dict["train_s"]


def add_to_chemprop_trainer(clock: ChempropTrainingClock, epoch_checkpoint: Path, resume_from: Path | None) -> None:
    """Make every `lightning.pytorch.Trainer` chemprop builds carry `clock` and save `epoch_checkpoint` after every
    epoch, and its `fit` resume from `resume_from` (chemprop's train command builds one trainer per model and calls
    fit once on it)."""
    original_init, original_fit = pl.Trainer.__init__, pl.Trainer.fit

    def init_with_clock(self, *args, callbacks=None, **kwargs):
        # Unmonitored, top 1: the newest epoch replaces the file. Saved at the training epoch's end, after
        # validation, so it holds chemprop's checkpoint and early-stopping states of that epoch; listed after
        # chemprop's ModelCheckpoint, which thus stays the trainer's `checkpoint_callback` (the best model).
        every_epoch = ModelCheckpoint(
            dirpath=epoch_checkpoint.parent,
            filename=epoch_checkpoint.stem,
            save_top_k=1,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
        original_init(self, *args, callbacks=[*(callbacks or []), clock, every_epoch], **kwargs)

    def fit_resumed(self, *args, **kwargs):
        # The checkpoint is this training's own, so unpickling all of it (chemprop's hyperparameters too) is safe.
        return original_fit(self, *args, ckpt_path=str(resume_from), weights_only=False, **kwargs)

    pl.Trainer.__init__ = init_with_clock
    if resume_from is not None:
        pl.Trainer.fit = fit_resumed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clock_file", type=Path, required=True, help="Where the training seconds are written.")
    parser.add_argument(
        "--epoch_checkpoint", type=Path, required=True, help="The checkpoint written after every epoch (*.ckpt)."
    )
    parser.add_argument("--resume_from", type=Path, default=None, help="A Lightning checkpoint of this training.")
    parser.add_argument(
        "--unclocked_train_s",
        type=float,
        default=None,
        help="The training seconds before --resume_from, used if that checkpoint has no clock (chemprop's own "
        "command line saved it): the clock starts there, so the checkpoints of this attempt carry them on.",
    )
    parser.add_argument("chemprop_args", nargs=argparse.REMAINDER, help="`-- ARGS`: the arguments of chemprop train.")
    args = parser.parse_args()
    chemprop_args = args.chemprop_args[1:] if args.chemprop_args[:1] == ["--"] else args.chemprop_args
    if args.resume_from is not None and not args.resume_from.is_file():
        parser.error(f"--resume_from {args.resume_from}: no such checkpoint")

    clock = ChempropTrainingClock(args.unclocked_train_s)
    add_to_chemprop_trainer(clock, args.epoch_checkpoint, args.resume_from)
    sys.argv = ["chemprop", "train", *chemprop_args]
    chemprop_main()
    if clock.elapsed_s is None:
        raise SystemExit(
            "chemprop train ended without training (resuming a checkpoint of a finished training? start over)"
        )
    figures = {"train_s": clock.elapsed_s, "resumed_train_s": clock.resumed_s}
    figures |= {"epochs": clock.epochs, "resumed_epochs": clock.resumed_epochs}
    args.clock_file.write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
