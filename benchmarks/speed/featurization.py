"""Benchmark ProtoMol SMILES featurization against torch_geometric.utils.from_smiles.

Measures, on the HIV SMILES shipped with the package:
  * smiles_to_graph in one process,
  * featurize_many over a process pool,
  * torch_geometric.utils.from_smiles in one process, on the same molecules,
then prints a table and writes the figures and machine details as JSON.

The two single-process measurements alternate over blocks of molecules, so any
background load on the machine slows both by the same amount and the per-core
ratio stays fair.

    python -m benchmarks.speed.featurization   # --limit N for a quick run, --workers N processes
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import os
import time
from pathlib import Path

import pandas as pd

from benchmarks.machine import describe_machine
from benchmarks.speed.measure import write_results
from protomol_hf.featurization_protomol import (
    ProtoMolFeaturizationError,
    featurize_many,
    smiles_to_graph,
)

WARMUP_MOLECULES = 50


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N molecules (default: all 41,127)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count(), help="processes for featurize_many (default: os.cpu_count())"
    )
    parser.add_argument(
        "--block-size", type=int, default=500, help="molecules per alternating timing block (default: 500)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("benchmarks/results/featurization.json"),
        help="JSON file for the results (default: %(default)s)",
    )
    return parser.parse_args()


def load_hiv_smiles(limit: int | None) -> list[str]:
    csv_path = importlib.resources.files("protomol_hf") / "datasets" / "hiv.csv.gz"
    with importlib.resources.as_file(csv_path) as path:
        smiles = pd.read_csv(path, usecols=["smiles"])["smiles"].tolist()
    return smiles if limit is None else smiles[:limit]


def run_ours(smiles_block: list[str]) -> int:
    """Featurize a block with smiles_to_graph; returns how many molecules failed."""
    failures = 0
    for smiles in smiles_block:
        try:
            smiles_to_graph(smiles)
        except ProtoMolFeaturizationError:
            failures += 1
    return failures


def run_from_smiles(from_smiles, smiles_block: list[str]) -> int:
    """Featurize a block with PyG; returns how many molecules failed.

    from_smiles turns unparsable SMILES into an empty graph instead of failing,
    and raises ValueError when a feature value is missing from its vocabulary.
    """
    failures = 0
    for smiles in smiles_block:
        try:
            from_smiles(smiles)
        except ValueError:
            failures += 1
    return failures


def time_single_process(smiles: list[str], block_size: int) -> dict[str, dict]:
    from torch_geometric.utils import from_smiles

    run_ours(smiles[:WARMUP_MOLECULES])
    run_from_smiles(from_smiles, smiles[:WARMUP_MOLECULES])

    seconds = {"ours": 0.0, "pyg": 0.0}
    failures = {"ours": 0, "pyg": 0}
    for start in range(0, len(smiles), block_size):
        block = smiles[start : start + block_size]
        began = time.perf_counter()
        failures["ours"] += run_ours(block)
        seconds["ours"] += time.perf_counter() - began
        began = time.perf_counter()
        failures["pyg"] += run_from_smiles(from_smiles, block)
        seconds["pyg"] += time.perf_counter() - began
    return {
        name: {
            "seconds": round(seconds[name], 3),
            "molecules_per_s": round(len(smiles) / seconds[name], 1),
            "failures": failures[name],
        }
        for name in seconds
    }


def time_featurize_many(smiles: list[str], workers: int) -> dict:
    """Wall time of one featurize_many call, pool start-up included."""
    began = time.perf_counter()
    _, failures = featurize_many(smiles, num_workers=workers)
    elapsed = time.perf_counter() - began
    return {
        "workers": workers,
        "seconds": round(elapsed, 3),
        "molecules_per_s": round(len(smiles) / elapsed, 1),
        "failures": len(failures),
    }


def machine_info() -> dict:
    """The machine (featurization runs on the CPU) and the versions of the packages that featurize."""
    packages = ("numpy", "pandas", "rdkit", "torch", "torch_geometric")
    return {**describe_machine("cpu"), "versions": {name: importlib.metadata.version(name) for name in packages}}


def main() -> None:
    args = parse_args()
    smiles = load_hiv_smiles(args.limit)
    print(f"Featurizing {len(smiles):,} HIV molecules")

    single = time_single_process(smiles, args.block_size)
    pooled = time_featurize_many(smiles, args.workers)
    speedup_per_core = single["ours"]["molecules_per_s"] / single["pyg"]["molecules_per_s"]

    rows = [
        ("smiles_to_graph", 1, single["ours"]),
        ("featurize_many", args.workers, pooled),
        ("pyg from_smiles", 1, single["pyg"]),
    ]
    print(f"{'method':<18}{'processes':>10}{'seconds':>10}{'molecules/s':>14}{'failures':>10}")
    for name, processes, figures in rows:
        print(
            f"{name:<18}{processes:>10}{figures['seconds']:>10.2f}"
            f"{figures['molecules_per_s']:>14,.0f}{figures['failures']:>10}"
        )
    print(f"smiles_to_graph / from_smiles per core: {speedup_per_core:.2f}x")

    results = {
        "dataset": "hiv",
        "num_molecules": len(smiles),
        "smiles_to_graph": single["ours"],
        "featurize_many": pooled,
        "torch_geometric_from_smiles": single["pyg"],
        "speedup_per_core_vs_from_smiles": round(speedup_per_core, 3),
        "machine": machine_info(),
    }
    write_results(results, args.output)
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
