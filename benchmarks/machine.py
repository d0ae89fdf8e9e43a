"""The machine and the commit a benchmark ran on, as every record and speed figure names them."""

import os
import platform
import subprocess
from pathlib import Path

from benchmarks import REPO, REPORT_FILE, RESULTS_DIR


def git_commit() -> str:
    """HEAD of the checkout, with '-dirty' when tracked files differ from it. The harness's own outputs (results,
    report) do not count: a run that follows another in the same checkout would otherwise always be dirty."""
    own_outputs = [f":(exclude){path.relative_to(REPO)}" for path in (RESULTS_DIR, REPORT_FILE)]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        diff = ["git", "diff", "--quiet", "HEAD", "--", ".", *own_outputs]
        dirty = subprocess.run(diff, cwd=REPO, capture_output=True).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo, or platform.processor() where there is none."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe_machine(device: str | None = None) -> dict:
    """The machine a run or measurement used: CPUs, platform, Python, torch build and the CUDA device of `device`
    (the torch device it ran on) or, without one, the GPU a training run takes when one is visible."""
    import torch

    on_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    return {
        "cpu_count": os.cpu_count(),
        "processor": cpu_model_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if on_cuda else None,
    }


def format_machine(machine: dict) -> str:
    """A `describe_machine` description in one line, as the report shows it."""
    device = machine["cuda_device"] or "no CUDA device"
    return (
        f"{machine['cpu_count']} CPUs ({machine['processor']}), {machine['platform']}, "
        f"Python {machine['python']}, torch {machine['torch']}, {device}"
    )
