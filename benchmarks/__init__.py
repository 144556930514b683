"""Load benchmarks: what a waiting approval costs, measured against a plain baseline.

Run ``uv run python -m benchmarks.load --help``. Results go to ``benchmarks/results/``.
"""
