"""Sealed jobs: every file of a job's bundle hashed into a manifest whose hash the registry keeps.

    manifest(job_dir) -> {relative path: sha256}      every file but run-time outputs (output/, __pycache__/)
    manifest_hash(manifest) -> str
    check_manifest(job_dir, expected_hash, recorded) -> list[str]   what changed, was added or removed

At generation the manifest is computed over the finished bundle (data, job.yaml, recipe.yaml, rewards.py,
launch.sh, slurm.sbatch, trainjob.yaml, accelerate configs, README) and stored, with its hash, in the job's
chained row. Every launch path (``jobs run``, ``launch.sh``, ``slurm.sbatch``, the Kubernetes TrainJob) runs
``registry jobs run JOB [--check]`` first, which recomputes it and refuses on any difference.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from graduation.spec import sha256_json

#: Written while a job runs, not part of what was approved.
RUNTIME_DIRS = ("output", "__pycache__")


def manifest(job_dir: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    root = Path(job_dir)
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in RUNTIME_DIRS for part in rel.parts):
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
