"""Speed benchmarks, each a module run from the repository root (`python -m benchmarks.speed.inference ...`):
featurization, inference (prediction from SMILES), text_cache (text-feature caching), training_profile (where
a training step's time goes), against_chemprop (all of them and training against chemprop, in one run), and
gpu.sh (the GPU figures). Each writes JSON figures that docs/benchmarks.md quotes."""
