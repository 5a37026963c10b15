"""Where a job runs, and the command that launches it there: one entry per target.

    launch_commands("slurm", "toy-grpo-...", cluster)    # ["sbatch --chdir registry/jobs/toy-... registry/jobs/..."]

``registry jobs generate`` prints these after writing a job, and ``--dry-run`` shows them before anything is
written. Every command first re-checks the decision (the scripts call ``registry jobs run JOB --check``).
"""

from __future__ import annotations

from typing import Any


def _local(job: str, job_dir: str, cluster: Any) -> list[str]:
    return [f"registry jobs run {job}", f"{job_dir}/launch.sh local"]


def _accelerate(job: str, job_dir: str, cluster: Any) -> list[str]:
    return [f"{job_dir}/launch.sh zero3", f"{job_dir}/launch.sh multi_gpu", f"{job_dir}/launch.sh single_gpu"]


def _slurm(job: str, job_dir: str, cluster: Any) -> list[str]:
    return [f"sbatch --chdir {job_dir} {job_dir}/slurm.sbatch"]


def _kubernetes(job: str, job_dir: str, cluster: Any) -> list[str]:
    image = getattr(cluster, "image", "graduation-trl:latest")
    return [f"kubectl apply -f {job_dir}/trainjob.yaml",
            f"(first) docker build -t {image} {job_dir} && docker push {image}"]


TARGETS = {"local": _local, "accelerate": _accelerate, "slurm": _slurm, "kubernetes": _kubernetes}


def launch_commands(target: str, job: str, cluster: Any = None, job_dir: str | None = None) -> list[str]:
    """The commands that launch ``job`` on ``target``, most usual first."""
    return TARGETS[target](job, job_dir or f"registry/jobs/{job}", cluster)


__all__ = ["TARGETS", "launch_commands"]
