"""ProtoMol's benchmarks, run from the repository root as modules (`python -m benchmarks.harness ...`).

  harness/   accuracy on the fixed MoleculeNet splits: configs and run planning, running and recording runs,
             and rendering every result into docs/benchmarks.md;
  speed/     featurization, inference, text-feature caching and training-step speed, and all of them against
             chemprop in one run;
  chemprop/  chemprop v2 with its defaults on the same splits, the baseline of the accuracy and speed figures;
  machine.py the machine and commit every record and speed figure names.
Data: configs/ (the harness's configs), results/ (records and speed figures), text/ (descriptions).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "benchmarks" / "configs"
RESULTS_DIR = REPO / "benchmarks" / "results"
REPORT_FILE = REPO / "docs" / "benchmarks.md"


def display_path(path: Path) -> str:
    """A path relative to the repository root when it lies inside it (commands run from there)."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)
