"""The benchmark harness: ProtoMol trained and scored on the fixed MoleculeNet splits, one record per run, and
docs/benchmarks.md rendered from the records. `python -m benchmarks.harness --help` (cli.py) runs it;
configs.py plans the runs, runner.py runs and records them, report.py and speed_report.py render the report."""
