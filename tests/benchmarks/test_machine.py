"""benchmarks.machine: the commit a record names is dirty for code changes, not for the harness's outputs."""

import subprocess

from benchmarks import machine


def test_commit_is_dirty_for_code_changes_but_not_for_the_harness_outputs(monkeypatch, tmp_path):
    for path in ("src.py", "benchmarks/results/default.jsonl", "docs/benchmarks.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("first\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    for command in (["init", "-q"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run(git + command, check=True)
    monkeypatch.setattr(machine, "REPO", tmp_path)
    monkeypatch.setattr(machine, "RESULTS_DIR", tmp_path / "benchmarks" / "results")
    monkeypatch.setattr(machine, "REPORT_FILE", tmp_path / "docs" / "benchmarks.md")
    (tmp_path / "benchmarks/results/default.jsonl").write_text("first\nsecond\n")
    (tmp_path / "docs/benchmarks.md").write_text("rendered again\n")
    assert not machine.git_commit().endswith("-dirty")
    (tmp_path / "src.py").write_text("changed\n")
    assert machine.git_commit().endswith("-dirty")
