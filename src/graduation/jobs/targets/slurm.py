"""``slurm``: ``slurm.sbatch`` runs ``accelerate launch`` on every node (with a vLLM node when asked)."""

from __future__ import annotations

from typing import Any

from graduation.jobs.files import bare, k8s_name
from graduation.jobs.targets import Target, register


def launch(job: str, job_dir: str, cluster: Any) -> list[str]:
    return [f"sbatch --chdir {job_dir} {job_dir}/slurm.sbatch"]


def files(job: Any, env: Any, context: dict[str, Any]) -> dict[str, str]:
    c = job.cluster
    return {"slurm.sbatch": env.get_template("slurm.sbatch.j2").render(
        **context, train_nodes=c.nodes, total_nodes=c.nodes + (1 if c.vllm else 0), vllm=c.vllm,
        accelerate_config="zero3", slurm_name=bare(k8s_name(job.job), "Slurm job name"), cpus_per_task=16,
        time_limit="24:00:00", main_port=29500, vllm_port=8000)}


register(Target("slurm", "a Slurm cluster (sbatch slurm.sbatch)", "zero3", launch, files))
