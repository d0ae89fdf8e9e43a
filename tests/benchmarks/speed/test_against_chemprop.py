"""benchmarks.speed.against_chemprop: training speed compared as the mean over several splits, and rendered."""

import json

from conftest import make_record

from benchmarks.harness.report import render_markdown
from benchmarks.speed import against_chemprop


def test_bench_speed_compares_the_mean_over_several_splits(tmp_path):
    # Where the best epoch lands varies much between splits, so several splits are averaged, and each is shown.
    ours = against_chemprop.mean_training_speed(
        [
            make_record("small", "bace", "random_0", 0.8, best_epoch=10.0, epochs_run=20.0, train_wall_s=80.0),
            make_record("small", "bace", "random_1", 0.9, best_epoch=20.0, epochs_run=30.0, train_wall_s=60.0),
        ]
    )
    assert ours["per_split"]["random_0"]["time_to_best_validation_s"] == 40.0
    assert ours["per_split"]["random_1"]["time_to_best_validation_s"] == 40.0
    assert ours["seconds_per_epoch"] == 3.0 and ours["best_epoch"] == 15.0 and ours["test_roc_auc"] == 0.85
    chemprop = [
        make_record("chemprop_defaults", "bace", split, 0.8, system="chemprop", best_epoch=best, seconds_per_epoch=2.0)
        for split, best in (("random_0", 25), ("random_1", 49))
    ]
    theirs = against_chemprop.mean_training_speed(chemprop)
    assert theirs["time_to_best_validation_s"] == 74.0
    assert against_chemprop.mean_training_speed(chemprop[:1]) == theirs["per_split"]["random_0"]

    speed_dir = tmp_path / "speed"
    speed_dir.mkdir()
    entry = {
        "splits": ["random_0", "random_1"],
        "protomol": {"small": ours},
        "chemprop": theirs,
        "protomol_over_chemprop": {"small": {"time_to_best_validation": 0.54, "seconds_per_epoch": 1.5}},
    }
    summary = {
        "git_commit": "abc",
        "hardware": make_record("default", "bace", "random_0", 0.8)["hardware"],
        "featurization_per_core_vs_from_smiles": 2.2,
        "prediction_vs_bare_text_model": {"float32": 0.71},
        "training": {"bace": entry},
        "chemprop": "ran",
        "inference": {"protomol_predict_molecules_per_s": {"float32": 60.0}},
    }
    (speed_dir / "speed.json").write_text(json.dumps(summary))
    report = render_markdown([], tmp_path)
    assert "| bace mean over random_0, random_1, small: time to best validation (s) | 40.0 | 74.0 | 0.54 |" in report
    assert "| bace random_1, small: best epoch, time to best validation (s) | 20.0, 40.0 | 49, 98.0 | |" in report
