"""Shared helpers for benchmarks: timing subprocesses side by side and printing ratios."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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


class PeakMemory:
    """The largest value ``measure()`` (MB) returned, sampled every 50 ms on a thread between start and stop."""

    def __init__(self, measure: Callable[[], float]) -> None:
        self.measure = measure
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            self._stop.wait(0.05)

    def start(self) -> "PeakMemory":
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


# -- the tree before the restructuring ----------------------------------------------------------------
# The same benchmark file also runs against the code from before the restructuring (for before/after
# figures); these only pick the module path that exists there. Nothing measured differs.

def evaluate_fn():
    try:
        from graduation.service.evaluation import evaluate
    except ModuleNotFoundError:  # before the restructuring
        from graduation.gather import evaluate
    return evaluate


def check_verifiers_fn():
    try:
        from graduation.service.validation import check_verifiers
    except ModuleNotFoundError:  # before the restructuring
        from graduation.gather import check_verifiers
    return check_verifiers


def load_many_fn():
    try:
        from graduation.service.project import load_many
    except ModuleNotFoundError:  # before the restructuring
        from graduation.project import load_many
    return load_many


def loaded_domain_cls():
    try:
        from graduation.records import LoadedDomain
    except ImportError:  # before the restructuring it lived in store.domains
        from graduation.store.domains import LoadedDomain
    return LoadedDomain


def ray_engine_cls():
    try:
        from graduation.service.engines.ray_engine import RayEngine
    except ModuleNotFoundError:  # before the restructuring
        from graduation.engines.ray_engine import RayEngine
    return RayEngine
