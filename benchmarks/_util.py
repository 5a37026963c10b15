"""Shared helpers for benchmarks: timing subprocesses side by side and printing ratios."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_command(argv: list[str], repeat: int = 7, cwd: Path | None = None, env: dict | None = None) -> float:
    """Median wall time of a command (seconds), each run a cold process."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def python_pass_time(repeat: int = 7) -> float:
    return time_command([sys.executable, "-c", "pass"], repeat)


def report(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(title)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
