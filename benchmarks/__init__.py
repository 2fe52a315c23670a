"""Benchmarks: Questboard against plain Celery (and other baselines), each measured in the same run."""
