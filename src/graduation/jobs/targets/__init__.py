"""Where a job runs: one module per target, registered by name.

    launch_commands("slurm", "toy-grpo-...", cluster)   # ["sbatch --chdir registry/jobs/toy-... ..."]
    TARGETS["kubernetes"].files(job, env, context)      # {"trainjob.yaml": ..., "Dockerfile": ...}

Each target names the commands that launch a job there (``registry jobs generate`` prints them; ``--dry-run``
shows them before anything is written) and renders the files it launches with. A bundle carries every
target's launch files, so that a job generated for one place can be launched at another after it is copied
(the seal covers them all); the job's own target only picks the default. Every launch first re-checks the
seal and the decision (``registry jobs run JOB --check``).

Adding a target: one module here that calls ``register(Target(...))`` and is imported below, plus its
templates in ``jobs/templates/``. ``JobFile.target``, ``--target`` and its checks derive from ``TARGETS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    accelerate: str  # the accelerate config its launch uses ("local": a plain run here)
    launch: Callable[[str, str, Any], list[str]]  # (job id, job directory as shown, cluster) -> commands
    files: Callable[[Any, Any, dict[str, Any]], dict[str, str]]  # (JobFile, Jinja2 env, shared context)


TARGETS: dict[str, Target] = {}


def register(target: Target) -> Target:
    TARGETS[target.name] = target
    return target


def launch_commands(target: str, job: str, cluster: Any = None, job_dir: str | None = None) -> list[str]:
    """The commands that launch ``job`` on ``target``, most usual first."""
    return TARGETS[target].launch(job, job_dir or f"registry/jobs/{job}", cluster)


# each module registers its target (in the order --help lists them)
from graduation.jobs.targets import local, accelerate, slurm, kubernetes  # noqa: E402,F401  isort: skip

__all__ = ["TARGETS", "Target", "launch_commands", "register"]
