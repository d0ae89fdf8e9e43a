"""chemprop v2 with its default settings on the fixed splits: the baseline of the accuracy and speed figures.
baseline.py runs it (`python -m benchmarks.chemprop.baseline ...`) and records it as the harness records
ProtoMol; train_wrapper.py is the `chemprop train` it runs, with chemprop's own Python, so that a training
can resume."""
