"""The reward functions of a generated GRPO job: what its ``rewards.py`` hands to TRL.

    from graduation.jobs.rewards import job_rewards
    REWARDS = job_rewards(Path(__file__).resolve().parent)   # {function name: reward function}
"""

from __future__ import annotations

import atexit
from pathlib import Path
from typing import Any

from graduation.jobs.model import read_job_file
from graduation.spec import DomainSpec
from graduation.training.rewards import VerifierReward, isolated_kind, domain_rewards, python_identifier
from graduation.verifiers import VerifierPool


def job_rewards(job_dir: Any) -> dict[str, VerifierReward]:
    """The reward functions of a generated GRPO job, by the function names its recipe lists.

    Reads ``job.yaml`` (the resolved domain spec); the verifiers are built from the bundle's own copy of the
    domain's files (``project/``), wherever the directory is; isolated verifier kinds share one pool for the
    life of the process.
    """
    job = read_job_file(Path(job_dir) / "job.yaml")
    spec = DomainSpec.model_validate(job.domain.spec)
    pool = None
    if any(isolated_kind(v.kind) for v in spec.verifiers):
        pool = VerifierPool()
        atexit.register(pool.close)
    files_root = Path(job.project_root) if job.project_root else Path(job_dir).resolve() / job.project
    funcs, _weights = domain_rewards(spec, files_root, pool=pool)
    by_name = {python_identifier(f.__name__): f for f in funcs}
    wanted = [r.function for r in job.rewards]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise ValueError(f"{Path(job_dir) / 'job.yaml'}: rewards {missing} do not match the domain's verifiers "
                         f"({sorted(by_name)}); regenerate the job")
    return by_name


__all__ = ["job_rewards"]
