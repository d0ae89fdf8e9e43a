"""What the speed scripts share: a clock that waits for the device, and how a script hands its figures over
(printed, and written as the JSON file the report reads)."""

import json
import time
from pathlib import Path


def elapsed_since(start: float, device: str) -> float:
    """Seconds since `start` (a `time.perf_counter()`), after the device's queued work has finished: CUDA runs
    asynchronously, so an unsynchronized clock would time only the launches."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - start


def write_results(results: dict, output: Path) -> None:
    """Write a speed script's results to `output` as JSON, for the report."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")


def report_results(results: dict, output: Path | None) -> None:
    """Print a speed script's results as JSON and, given a path, write them there for the report."""
    print(json.dumps(results, indent=2))
    if output is not None:
        write_results(results, output)
