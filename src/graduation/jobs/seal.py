"""Sealed jobs: every file of a job's bundle hashed into a manifest whose hash the registry keeps.

    manifest(job_dir) -> {relative path: sha256}      every file but what a run writes (top-level output/, logs/)
    manifest_hash(manifest) -> str
    check_manifest(job_dir, expected_hash, recorded) -> list[str]   what changed, was added or removed

At generation the manifest is computed over the finished bundle (data, job.yaml, recipe.yaml, rewards.py,
launch.sh, slurm.sbatch, trainjob.yaml, accelerate configs, README, the domain's files and the policy under
project/, the model under model/) and stored, with its hash, in the job's chained row. Every launch path
(``jobs run``, ``launch.sh``, ``slurm.sbatch``, the Kubernetes TrainJob) runs ``registry jobs run JOB
[--bundle DIR] [--check]`` first, which recomputes it over the directory it runs from and refuses on any
difference. Only the top-level ``output/`` and ``logs/`` are a run's own: a ``__pycache__`` anywhere else is a
file added (its bytecode would run instead of the sealed source), so the scripts set PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from graduation.spec import sha256_json

from graduation.jobs.bundle import RUNTIME_DIRS  # written while a job runs (top level), not approved


def manifest(job_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    root = Path(job_dir)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in RUNTIME_DIRS:
            continue
        if path.is_symlink():
            out[rel.as_posix()] = "symlink:" + str(path.readlink())
        elif path.is_file():
            out[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def manifest_hash(files: dict[str, str]) -> str:
    return sha256_json(files)


def check_manifest(job_dir: Path, expected_hash: str | None, recorded: dict[str, str] | None) -> list[str]:
    """What differs from the sealed bundle (empty when nothing does)."""
    if not expected_hash:
        return ["the job has no sealed manifest in the registry (generated before jobs were sealed)"]
    recorded = recorded or {}
    if manifest_hash(recorded) != expected_hash:
        return ["the job's recorded manifest does not match its sealed hash"]
    now = manifest(job_dir)
    problems = [f"{p} changed" for p in sorted(now) if p in recorded and now[p] != recorded[p]]
    problems += [f"{p} was added" for p in sorted(now) if p not in recorded]
    problems += [f"{p} was removed" for p in sorted(recorded) if p not in now]
    return problems


__all__ = ["RUNTIME_DIRS", "check_manifest", "manifest", "manifest_hash"]
