"""``kubernetes``: a Kubeflow Trainer v2 ``TrainJob`` whose init container re-checks the seal and the decision,
and the Dockerfile of the image it runs (the bundle inside it)."""

from __future__ import annotations

import shlex
from typing import Any

from graduation.jobs.files import dump_yaml, k8s_name
from graduation.jobs.targets import Target, register

TRAINJOB_API = "trainer.kubeflow.org/v1alpha1"
TORCH_REPLICATED_JOB = "node"  # the replicated job of Kubeflow's torch-distributed runtime
REGISTRY_SECRET = "graduation-registry"  # a Secret with key ``url``: the registry's database URL
JOB_IN_IMAGE = "/workspace/job"  # where the Dockerfile puts the bundle


def trainjob(job: Any, workdir: str) -> dict[str, Any]:
    """A Kubeflow Trainer v2 ``TrainJob`` running ``accelerate launch`` on every node of the torch runtime.

    The torch-distributed runtime sets PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR and PET_MASTER_PORT on each
    node; the job directory is expected at ``workdir`` in the image (or on a mounted volume).
    """
    c = job.cluster
    accel = "zero3"
    script = " ".join([
        "cd", shlex.quote(workdir), "&&",
        # the sealed bundle and the decision are checked before anything starts, as by launch.sh
        "registry", "jobs", "run", shlex.quote(job.job), "--check", "--bundle", ".", "&&",
        "exec", "accelerate", "launch",
        "--config_file", shlex.quote(f"accelerate/{accel}.yaml"),
        "--num_machines", '"$PET_NNODES"',
        "--num_processes", f'"$((PET_NNODES * {int(c.gpus_per_node)}))"',
        "--machine_rank", '"$PET_NODE_RANK"',
        "--main_process_ip", '"$PET_MASTER_ADDR"',
        "--main_process_port", '"$PET_MASTER_PORT"',
        "-m", shlex.quote(f"trl.scripts.{job.mode}"), "--config", "recipe.yaml",
    ])
    check = " ".join(["cd", shlex.quote(workdir), "&&", "exec", "registry", "jobs", "run", shlex.quote(job.job),
                      "--check", "--bundle", "."])
    registry_url = {"name": "REGISTRY_DB_URL", "valueFrom": {"secretKeyRef": {
        "name": REGISTRY_SECRET, "key": "url"}}}
    return {
        "apiVersion": TRAINJOB_API,
        "kind": "TrainJob",
        "metadata": {"name": k8s_name(job.job), "labels": {
            "graduation.dev/domain": k8s_name(job.domain.name),
            "graduation.dev/mode": job.mode,
            "graduation.dev/decision": job.decision.id[:63]}},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {
                "image": c.image,
                "numNodes": c.nodes,
                "resourcesPerNode": {"limits": {"nvidia.com/gpu": c.gpus_per_node},
                                     "requests": {"nvidia.com/gpu": c.gpus_per_node}},
                "command": ["bash", "-c"],
                "args": [script],
                "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}, {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                        registry_url],
            },
            # The decision check runs before training on every node: an init container that fails keeps the
            # trainer from starting (the registry is the team's PostgreSQL, its URL in a Secret).
            "runtimePatches": [{
                "manager": "graduation.dev/registry",
                "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
                    "name": TORCH_REPLICATED_JOB,
                    "template": {"spec": {"template": {"spec": {"initContainers": [{
                        "name": "decision-check",
                        "image": c.image,
                        "command": ["bash", "-c"],
                        "args": [check],
                        "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}, registry_url],
                    }]}}}},
                }]}}},
            }],
        },
    }


def launch(job: str, job_dir: str, cluster: Any) -> list[str]:
    image = getattr(cluster, "image", "graduation-trl:latest")
    return [f"kubectl apply -f {job_dir}/trainjob.yaml",
            f"(first) docker build -t {image} {job_dir} && docker push {image}"]


def files(job: Any, env: Any, context: dict[str, Any]) -> dict[str, str]:
    return {
        "trainjob.yaml": dump_yaml(
            trainjob(job, JOB_IN_IMAGE),
            f"Kubeflow Trainer v2 TrainJob of job {job.job}.\n"
            "Its init container re-checks the seal and the decision on every node before training starts.\n"
            "Build the image (see Dockerfile), create the Secret graduation-registry (key url), then:\n"
            "kubectl apply -f trainjob.yaml"),
        "Dockerfile": env.get_template("Dockerfile.j2").render(job_id=job.job, job_dir=JOB_IN_IMAGE,
                                                               peft=bool(job.peft)),
        ".dockerignore": "# what a run writes is not part of the image\noutput/\nlogs/\n",
    }


register(Target("kubernetes", "Kubeflow Trainer v2 (kubectl apply -f trainjob.yaml)", "zero3", launch, files))
