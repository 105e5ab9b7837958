"""TrainGym speed benchmarks; run them with ``python benchmarks/run.py [--smoke] [--out FILE]``."""
