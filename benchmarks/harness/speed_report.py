"""The speed sections of docs/benchmarks.md, from the JSON files the speed scripts (benchmarks/speed/) write:
featurization, text-feature caching, prediction and training-step figures, harness-format training timings,
and the ratios of a run against chemprop."""

import json
from pathlib import Path

from benchmarks import display_path
from benchmarks.harness.runner import read_jsonl
from benchmarks.machine import format_machine


def speed_section(results_dir: Path, heading: str = "Speed") -> list[str]:
    """Featurization, text-feature caching and prediction throughput and the training-step profile, from the
    speed scripts' JSON files in `results_dir` (the CPU figures; a subfolder per GPU holds its own)."""
    featurization_file = results_dir / "featurization.json"
    inference_files = sorted(results_dir.glob("inference*.json"))
    profile_files = sorted(results_dir.glob("profile_training*.json"))
    text_cache_files = sorted(results_dir.glob("text_cache*.json"))
    training_files = sorted(results_dir.glob("train*.jsonl"))
    if not (featurization_file.is_file() or inference_files or profile_files or text_cache_files or training_files):
        return []
    lines = ["", f"## {heading}", ""]
    if featurization_file.is_file():
        f = json.loads(featurization_file.read_text())
        lines += [
            f"Featurization (`python -m benchmarks.speed.featurization`, {f['num_molecules']:,} {f['dataset']} "
            f"SMILES, {f['machine']['cpu_count']} CPUs): {f['smiles_to_graph']['molecules_per_s']:,.0f} molecules/s "
            f"in one process, {f['featurize_many']['molecules_per_s']:,.0f}/s with {f['featurize_many']['workers']} "
            f"processes; `torch_geometric.utils.from_smiles` "
            f"{f['torch_geometric_from_smiles']['molecules_per_s']:,.0f}/s, so "
            f"**{f['speedup_per_core_vs_from_smiles']:.2f}x** per core.",
            "",
        ]
    if text_cache_files:
        lines += text_cache_table([json.loads(path.read_text()) for path in text_cache_files])
    for index, inference_file in enumerate(inference_files):
        lines += [""] * (index > 0) + inference_lines(json.loads(inference_file.read_text()))
    for profile_file in profile_files:
        lines += profile_lines(json.loads(profile_file.read_text()))
    if training_files:
        lines += training_lines([record for path in training_files for record in read_jsonl(path)])
    return lines


def speed_comparison(folder: Path) -> list[str]:
    """The ratios of one `benchmarks.speed.against_chemprop` run, then the figures of its steps."""
    summary = json.loads((folder / "speed.json").read_text())
    lines = [
        "",
        f"## Speed against chemprop, in one run (`python -m benchmarks.speed.against_chemprop`, {display_path(folder)})",
        "",
        f"Machine: {format_machine(summary['hardware'])}; commit `{summary['git_commit']}`; chemprop: "
        f"{summary['chemprop']}.",
        "",
        "| measure | ProtoMol | chemprop v2 | ProtoMol / chemprop |",
        "|---|---|---|---|",
    ]
    for dataset, entry in summary["training"].items():
        theirs = entry.get("chemprop", {})
        # Runs before --train_splits existed trained on random_0 only.
        splits = entry.get("splits", ["random_0"])
        split_label = splits[0] if len(splits) == 1 else f"mean over {', '.join(splits)}"
        # One block of rows per ProtoMol config trained in the run (e.g. default and bf16), each against chemprop.
        for config, ours in entry["protomol"].items():
            ratios = entry["protomol_over_chemprop"].get(config, {})
            label = f"{dataset} {split_label}, {config}"
            for measure, key, ratio_key in (
                ("time to best validation (s)", "time_to_best_validation_s", "time_to_best_validation"),
                ("seconds per epoch", "seconds_per_epoch", "seconds_per_epoch"),
            ):
                lines.append(
                    f"| {label}: {measure} | {ours.get(key, '–')} | {theirs.get(key, '–')} | "
                    f"{ratios.get(ratio_key, '–')} |"
                )
            test_key = next(key for key in ours if key.startswith("test_"))
            lines.append(
                f"| {label}: peak RSS (MB), best epoch, {test_key.removeprefix('test_')} | {ours['peak_rss_mb']}, "
                f"{ours['best_epoch']}, {ours[test_key]} | {theirs.get('peak_rss_mb', '–')}, "
                f"{theirs.get('best_epoch', '–')}, {theirs.get(test_key, '–')} | |"
            )
            for split, figures in ours.get("per_split", {}).items():
                chemprop_split = theirs.get("per_split", {}).get(split, {})
                lines.append(
                    f"| {dataset} {split}, {config}: best epoch, time to best validation (s) | "
                    f"{figures['best_epoch']}, {figures['time_to_best_validation_s']} | "
                    f"{chemprop_split.get('best_epoch', '–')}, {chemprop_split.get('time_to_best_validation_s', '–')} | |"
                )
    inference = summary["inference"]
    chemprop_predict = inference.get("chemprop_predict")
    chemprop_note, chemprop_rate = "", "–"
    if chemprop_predict:
        chemprop_note = f"; chemprop on the {chemprop_predict['molecules']:,} parsable ones"
        chemprop_rate = chemprop_predict["molecules_per_s"]
    for dtype, rate in inference["protomol_predict_molecules_per_s"].items():
        ratio = inference.get("protomol_over_chemprop", {}).get(dtype, "–")
        lines.append(
            f"| predict from SMILES, ProtoMol in {dtype} (molecules/s, start-up included{chemprop_note}) | {rate} | "
            f"{chemprop_rate} | {ratio} |"
        )
    shares = ", ".join(f"{share:.0%} in {dtype}" for dtype, share in summary["prediction_vs_bare_text_model"].items())
    lines += [
        "",
        f"Prediction from SMILES at {shares} of the bare text model (in the same dtype); featurization "
        f"{summary['featurization_per_core_vs_from_smiles']:.2f}x `from_smiles` per core. The steps' own figures:",
    ]
    return lines + speed_section(folder, heading="Speed in that run: the steps of benchmarks.speed.against_chemprop")


def run_settings(results: dict) -> str:
    """Where a speed script ran: the CPU count, and the GPU and precision when it used one."""
    machine = results["machine"]
    if not machine.get("cuda_device"):
        return f"{machine['cpu_count']} CPUs" + (
            f", {results['dtype']}" if results.get("dtype", "float32") != "float32" else ""
        )
    return f"{machine['cuda_device']}, {results['dtype']}, {machine['cpu_count']} CPUs"


def text_cache_table(results: list[dict]) -> list[str]:
    """One row per `benchmarks.speed.text_cache` run."""
    lines = [
        "Text-feature caching (`python -m benchmarks.speed.text_cache`: template descriptions, frozen text model, "
        "states written to a memory-mapped float16 file), against the bare text model on the same batches:",
        "",
        "| text model | parameters | texts | where | cache build texts/s | bare text model texts/s | cache size |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: r["text_model_parameters_m"]):
        lines.append(
            f"| {r['text_model']} | {r['text_model_parameters_m']:,}M | {r['distinct_texts']:,} ({r['dataset']}) | "
            f"{run_settings(r)} | {r['texts_per_s']['cache_build']:,} | {r['texts_per_s']['bare_text_model']:,} | "
            f"{r['cache_size_mb']:,} MB |"
        )
    return [*lines, ""]


def _count(number: int, noun: str) -> str:
    """'1 process', '2 processes'."""
    return f"{number:,} {noun}{'' if number == 1 else 'es' if noun.endswith('s') else 's'}"


def inference_lines(i: dict) -> list[str]:
    """The `benchmarks.speed.inference` table and its summary."""
    rates, stages = i["molecules_per_s"], i["stages"]
    return [
        f"Prediction from SMILES (`python -m benchmarks.speed.inference`, the first {i['num_molecules']:,} rows of "
        f"{i['dataset']}, batch size {i['batch_size']}, featurization in {_count(i.get('num_workers', 1), 'process')}, "
        f"{run_settings(i)}, model: {i['model']}):",
        "",
        "| stage | molecules/s |",
        "|---|---|",
        f"| `protomol predict` CSV to CSV (start-up and loading included; peak RSS "
        f"{i['cli']['peak_rss_mb']:,.0f} MB) | {rates['protomol_predict_cli']} |",
        f"| `predict_smiles` in process | {rates['predict_smiles_in_process']} |",
        f"| featurization only (graph, template description, tokens) | {rates['featurization']} |",
        f"| model only (text model + ProtoMol) | {rates['model_forward']} |",
        f"| bare text model on the same batches (the floor) | {rates['bare_text_model']} |",
        f"| bare text model, batches in input order | {rates['bare_text_model_input_order']} |",
        "",
        f"Prediction runs at **{i['predict_vs_bare_text_model']:.0%}** of the bare text model's throughput. "
        f"Batches group descriptions of similar length: {stages['padded_tokens_per_molecule']} padded tokens "
        f"per molecule for {stages['mean_tokens_per_molecule']} real ones, against "
        f"{stages['padded_tokens_per_molecule_input_order']} in input order.",
    ]


def training_lines(records: list[dict]) -> list[str]:
    """Timing of harness runs on this machine (the benchmark's record format), one row per run."""
    lines = [
        "",
        "Training on this machine, in the benchmark harness's record format (`python -m benchmarks.harness --config "
        "default --datasets D --splits S -- OPTIONS`, or the launch command shown). The last column is each run's "
        "command without the data set, split and output folder:",
        "",
        "| dataset | split | epochs | s per epoch | wall s (data preparation included) | peak RSS MB | test metric "
        "| command |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['dataset']} | {r['split']} | {r['epochs_run']:g} | {r['train_wall_s'] / r['epochs_run']:.1f} | "
            f"{r['wall_s']:.0f} | {r['peak_rss_mb']:,.0f} | {r['metric']} {r['value']:.3f} | "
            f"`{train_options(r['command'])}` |"
        )
    return lines


def train_options(command: str) -> str:
    """A recorded command without what every run has: `python scripts/train.py` and the data set, split and
    output folder (a launcher such as `accelerate launch ...` stays)."""
    words, kept = command.split(), []
    if words[:2] == ["python", "scripts/train.py"]:
        words = words[2:]
    while words:
        word = words.pop(0)
        if word in ("--dataset_name", "--split_file", "--output_dir"):
            words.pop(0)
        else:
            kept.append(word)
    return " ".join(kept)


def profile_lines(profile: dict) -> list[str]:
    """One paragraph per `benchmarks.speed.training_profile` run."""
    parts = ", ".join(f"{part} {ms} ms" for part, ms in profile["forward_ms_per_step"].items() if ms >= 1)
    top = ", ".join(f"{op} {share:.0%}" for op, share in list(profile["top_operators_self_cpu_share"].items())[:4])
    changes = json.dumps(profile["config_changes"]) if profile["config_changes"] else "the default model"
    where = "cached text states"
    gpu = ""
    if "gpu_busy_ms_per_step" in profile:
        where += f", {profile['device']}" + (", bf16 autocast" if profile["bf16_autocast"] else ", float32")
        gpu = (
            f" The GPU is busy {profile['gpu_busy_ms_per_step']} ms per step; the host issues "
            f"{profile['operators_per_step']:,} operators and waits on {profile['host_syncs_per_step']} "
            "synchronizations per step (forward times are the host's)."
        )
    return [
        "",
        f"Training step profile of {changes} (`python -m benchmarks.speed.training_profile`, {profile['dataset']}, batch "
        f"{profile['batch_size']}, {where}): {profile['ms_per_step']} ms per step; forward {parts}; "
        f"backward, optimizer and the rest {profile['rest_of_step_ms (backward, optimizer, glue)']} ms. "
        f"Operators by self CPU time: {top}.{gpu}",
    ]
