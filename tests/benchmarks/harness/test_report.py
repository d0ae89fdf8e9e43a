"""benchmarks.harness.report: docs/benchmarks.md rendered from records and speed figures (splits summarized,
the paper quoted, configurations paired with the default, the prototype-count sweep, speed sections)."""

import json

from conftest import make_record

from benchmarks.harness import runner
from benchmarks.harness.report import render_markdown


def test_report_summarizes_splits_and_quotes_the_paper(tmp_path):
    hiv = {"epochs": 10.0, "overrides": {"num_train_epochs": 10}}
    records = [
        make_record("default", "bace", "random_0", 0.80),
        make_record("default", "bace", "random_1", 0.84),
        make_record("default", "bace", "random_2", 0.88),
        make_record("default", "bace", "scaffold", 0.70),
        make_record("default", "hiv", "random_0", 0.75, processes=2, **hiv),
        make_record("no_alignment", "esol", "random_0", 1.2, metric="rmse"),
        make_record("no_cross_attention", "bace", "random_0", 0.78),
        make_record("no_cross_attention", "bace", "random_1", 0.86),
    ]
    lines = [json.dumps(record) for record in records]
    (tmp_path / "default.jsonl").write_text("\n".join(lines[:5]) + "\n")
    (tmp_path / "no_cross_attention.jsonl").write_text("\n".join(lines[6:]) + "\n")
    # A run recorded twice counts once, with its later value.
    (tmp_path / "no_alignment.jsonl").write_text(lines[5] + "\n" + lines[5].replace("1.2", "1.1") + "\n")
    # A run whose epochs an extra train argument changed (`-- --num_train_epochs 5`) says so.
    shortened = make_record("default", "muv", "random_0", 0.70, epochs=5.0, overrides={"num_train_epochs": 10})
    # ... also where the config sets the epochs for every dataset (the command then names them twice).
    command = "python scripts/train.py --dataset_name tox21 --num_train_epochs 30 --num_train_epochs 15"
    halved = make_record("default", "tox21", "random_0", 0.80, epochs=15.0, command=command)
    # Runs of one dataset recorded under two versions of its per-dataset options name their splits.
    earlier = make_record("default", "muv", "random_1", 0.72, epochs=5.0, overrides={"num_train_epochs": 5})
    with (tmp_path / "default.jsonl").open("a") as results:
        results.write("\n".join(json.dumps(r) for r in (shortened, halved, earlier)) + "\n")

    loaded = runner.load_records(tmp_path)
    report = render_markdown(loaded, tmp_path)
    assert len(loaded) == 11
    assert "| tox21 | roc_auc ↑ | 0.800 | 1 | – | 15 | 10 | random_0: 15 epochs by an extra argument |" in report
    assert (
        "| muv | roc_auc ↑ | 0.710 ± 0.014 | 2 | – | 5 | 10 | per-dataset: num_train_epochs=10 (random_0); "
        "per-dataset: num_train_epochs=5 (random_1); random_0: 5 epochs by an extra argument |" in report
    )
    # Paired with the default on the splits both ran (esol has no default run to pair with).
    assert "| no_cross_attention | bace | roc_auc ↑ | 2 | 0.820 | 0.820 | +0.000 | 1 of 2 | +0.000 |" in report
    assert "| no_alignment | esol |" not in report
    assert "| bace | roc_auc ↑ | 0.840 ± 0.040 | 3 | 0.700 | 30 | 10 |  |" in report
    assert (
        "| hiv | roc_auc ↑ | 0.750 | 1 | – | 10 | 10 | per-dataset: num_train_epochs=10; "
        "data-parallel (--processes): random_0: 2 processes |" in report
    )
    assert "| esol | rmse ↓ | 1.100 | 1 | – | 30 | 10 |  |" in report
    assert "**0.914 ± 0.003** (paper)" in report and "default: 0.840 ± 0.040 (n=3)" in report
    assert "| graph_only | `{" in report and "not yet available" not in report
    assert report.index("## Results: default") < report.index("## Results: no_alignment")
    assert render_markdown(list(reversed(loaded)), tmp_path) == report
    # The default's protocol runs with no record are named (an ablation's missing runs are not).
    missing = report[report.index("Not run yet: ") :].splitlines()[0]
    assert missing.startswith("Not run yet: bbbp (random_0, random_1, random_2, scaffold); clintox (")
    assert "bace" not in missing and "hiv (random_1, random_2, scaffold)" in missing
    assert report.count("Not run yet") == 1


def test_report_tabulates_the_prototype_count_sweep(tmp_path):
    records = [
        make_record("default", "esol", "random_0", 0.60, metric="rmse", valid_value=0.50),
        make_record("default", "esol", "random_1", 0.70, metric="rmse", valid_value=0.70),
        make_record("default", "esol", "scaffold", 1.00, metric="rmse"),
        make_record("prototypes_3", "esol", "random_0", 0.65, metric="rmse", valid_value=0.55),
        make_record("no_alignment", "esol", "random_0", 0.90, metric="rmse", valid_value=0.80),
        make_record("prototypes_7", "bace", "random_0", 0.80),
    ]
    report = render_markdown(records, tmp_path)

    start = report.index("## Prototype count N")
    table = report[start : report.index("\n## ", start)]
    # Random splits only; other ablations are not a prototype count; bace has one N, so no sweep.
    assert "| esol | rmse ↓ | 3 | 0.650 | 1 | 0.550 |\n| esol | rmse ↓ | 5 | 0.650 ± 0.071 | 2 | 0.600 |" in table
    assert "| bace |" not in table and "0.900" not in table
    assert "| prototypes_3 | esol | rmse ↓ | 1 | 0.600 | 0.650 | +0.050 | 0 of 1 | +0.050 |" in report


def test_report_counts_each_configuration_across_datasets(tmp_path):
    records = [
        make_record("default", "bace", "random_0", 0.80),
        make_record("default", "bace", "random_1", 0.84),
        make_record("default", "esol", "random_0", 0.60, metric="rmse"),
        # bace: better on one split, worse on the test mean, better on the validation mean; esol: a lower RMSE
        # is better.
        make_record("no_alignment", "bace", "random_0", 0.82, valid_value=0.90),
        make_record("no_alignment", "bace", "random_1", 0.80, valid_value=0.78),
        make_record("no_alignment", "esol", "random_0", 0.55, metric="rmse", valid_value=0.50),
        # No default run on bbbp: not paired, not counted.
        make_record("no_alignment", "bbbp", "random_0", 0.99),
    ]
    report = render_markdown(records, tmp_path)

    start = report.index("## Across datasets")
    table = report[start : report.index("\n## ", start)]
    assert "| no_alignment | bace, esol | 1 of 2 | 2 of 3 | 2 of 2 |" in table
    assert "bbbp" not in table


def test_report_shows_the_ratios_of_a_bench_speed_run(tmp_path):
    speed_dir = tmp_path / "speed"
    speed_dir.mkdir()
    ours = {
        "seconds_per_epoch": 30.0,
        "best_epoch": 4,
        "time_to_best_validation_s": 120.0,
        "peak_rss_mb": 1700,
        "test_roc_auc": 0.85,
    }
    ours_bf16 = {**ours, "seconds_per_epoch": 15.0, "time_to_best_validation_s": 60.0, "test_roc_auc": 0.84}
    theirs = {
        "seconds_per_epoch": 3.0,
        "best_epoch": 20,
        "time_to_best_validation_s": 60.0,
        "peak_rss_mb": 800,
        "test_roc_auc": 0.86,
    }
    summary = {
        "git_commit": "abc",
        "hardware": make_record("default", "bace", "random_0", 0.8)["hardware"],
        "featurization_per_core_vs_from_smiles": 2.2,
        "prediction_vs_bare_text_model": {"float32": 0.71, "bfloat16": 0.75},
        "training": {
            "bace": {
                "protomol": {"default": ours, "bf16": ours_bf16},
                "chemprop": theirs,
                "protomol_over_chemprop": {
                    "default": {"time_to_best_validation": 2.0, "seconds_per_epoch": 10.0},
                    "bf16": {"time_to_best_validation": 1.0, "seconds_per_epoch": 5.0},
                },
            }
        },
        "chemprop": "ran",
        "inference": {
            "protomol_predict_molecules_per_s": {"float32": 60.0, "bfloat16": 120.0},
            "chemprop_predict": {"molecules": 9998, "seconds": 35.0, "molecules_per_s": 285.7},
            "protomol_over_chemprop": {"float32": 0.21, "bfloat16": 0.42},
        },
    }
    (speed_dir / "speed.json").write_text(json.dumps(summary))

    report = render_markdown([], tmp_path)
    assert "## Speed against chemprop, in one run" in report and "Speed on SPEED" not in report
    assert "| bace random_0, default: time to best validation (s) | 120.0 | 60.0 | 2.0 |" in report
    assert "| bace random_0, bf16: seconds per epoch | 15.0 | 3.0 | 5.0 |" in report
    assert "| bace random_0, bf16: peak RSS (MB), best epoch, roc_auc | 1700, 4, 0.84 | 800, 20, 0.86 | |" in report
    assert (
        "ProtoMol in float32 (molecules/s, start-up included; chemprop on the 9,998 parsable ones) | 60.0 | 285.7 | 0.21 |"
        in report
    )
    assert (
        "ProtoMol in bfloat16 (molecules/s, start-up included; chemprop on the 9,998 parsable ones) | 120.0 | 285.7 | 0.42 |"
        in report
    )
    assert "Prediction from SMILES at 71% in float32, 75% in bfloat16 of the bare text model" in report


def test_report_times_the_training_runs_of_a_gpu_folder(tmp_path):
    gpu_dir = tmp_path / "h200"
    gpu_dir.mkdir()
    run = make_record(
        "default",
        "hiv",
        "random_0",
        0.77,
        epochs_run=2.0,
        train_wall_s=154.0,
        wall_s=203.0,
        peak_rss_mb=5478.0,
        command="python scripts/train.py --dataset_name hiv --split_file random_0 --output_dir /tmp/x --bf16",
    )
    launched = dict(
        run, command="accelerate launch --config_file c.yaml scripts/train.py --dataset_name hiv --output_dir /tmp/y"
    )
    (gpu_dir / "train_hiv.jsonl").write_text(json.dumps(run) + "\n" + json.dumps(launched) + "\n")

    report = render_markdown([], tmp_path)
    # The GPU folder's runs are timed in its own section, not counted as results of the default config.
    assert "## Speed on H200" in report and "## Results: default" not in report
    assert "| hiv | random_0 | 2 | 77.0 | 203 | 5,478 | roc_auc 0.770 | `--bf16` |" in report
    assert "| roc_auc 0.770 | `accelerate launch --config_file c.yaml scripts/train.py` |" in report
