"""Verification of a job's outputs on Ray: a KubeRay ``RayJob`` and a Ray cluster launcher config.

    files = ray_files(job)      # {"ray/rayjob.yaml": ..., "ray/cluster.yaml": ...}, written beside trainjob.yaml

Both run the same command on a Ray cluster's head node, where the driver runs:

    registry --project PROJECT evaluate DOMAIN --outputs registry/jobs/JOB/outputs/eval.jsonl \\
        --model JOB --engine ray --address auto

``outputs/eval.jsonl`` holds the trained checkpoint's outputs on the job's held-out prompts (``data/eval.jsonl``),
one row per sample with ``id`` or ``prompt`` and ``output``. The project directory (domains, verifier code, the
outputs) must be at the same path on every node: a shared volume (``graduation-project`` PVC) on Kubernetes,
a shared mount with ``ray up``. The registry is the project's own database, or the one named by
``REGISTRY_DB_URL`` (on Kubernetes from the optional secret ``graduation-registry``, key ``url``).

The data are dumped with ``yaml.safe_dump``: no value is pasted into YAML text; the command is a list of
arguments joined with ``shlex.quote``.
"""

from __future__ import annotations

import shlex
from typing import Any

from graduation.jobs.model import JobFile
from graduation.jobs.files import dump_yaml, k8s_name

RAYJOB_API = "ray.io/v1"
RAY_VERSION = "2.60.0"  # the version the Ray engine is tested with; match it to the image's
PROJECT_MOUNT = "/workspace/project"
PROJECT_CLAIM = "graduation-project"
REGISTRY_SECRET = "graduation-registry"
WORKER_CPUS = 8
WORKER_MEMORY = "16Gi"


def outputs_path(job: JobFile) -> str:
    """Where the checkpoint's outputs on the held-out prompts go, relative to the project root."""
    return f"registry/jobs/{job.job}/outputs/eval.jsonl"


def verify_command(job: JobFile, project: str, address: str = "auto") -> list[str]:
    return ["registry", "--project", project, "evaluate", job.domain.name, "--outputs", outputs_path(job),
            "--model", job.job, "--engine", "ray", "--address", address, "--json"]


def _labels(job: JobFile) -> dict[str, str]:
    return {"graduation.dev/domain": k8s_name(job.domain.name), "graduation.dev/job": k8s_name(job.job),
            "graduation.dev/purpose": "verification"}


def rayjob(job: JobFile) -> dict[str, Any]:
    """A KubeRay ``RayJob``: a Ray cluster for the run (CPU workers), the verification as its entrypoint."""

    image = job.cluster.image
    mount = [{"name": "project", "mountPath": PROJECT_MOUNT}]
    volumes = [{"name": "project", "persistentVolumeClaim": {"claimName": PROJECT_CLAIM}}]
    registry_env = [{"name": "REGISTRY_DB_URL", "valueFrom": {"secretKeyRef": {
        "name": REGISTRY_SECRET, "key": "url", "optional": True}}}]
    workers = max(1, job.cluster.nodes)
    return {
        "apiVersion": RAYJOB_API,
        "kind": "RayJob",
        "metadata": {"name": k8s_name(f"verify-{job.job}"), "labels": _labels(job)},
        "spec": {
            "entrypoint": " ".join(shlex.quote(a) for a in verify_command(job, PROJECT_MOUNT)),
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": 600,
            "backoffLimit": 0,
            "rayClusterSpec": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    # the driver runs on the head: it reads the ground truth, merges and writes the record
                    "rayStartParams": {"num-cpus": "0"},
                    "template": {"metadata": {"labels": _labels(job)}, "spec": {
                        "containers": [{
                            "name": "ray-head", "image": image,
                            "ports": [{"containerPort": 6379, "name": "gcs-server"},
                                      {"containerPort": 8265, "name": "dashboard"},
                                      {"containerPort": 10001, "name": "client"}],
                            "env": registry_env,
                            "resources": {"requests": {"cpu": "2", "memory": "4Gi"},
                                          "limits": {"cpu": "2", "memory": "8Gi"}},
                            "volumeMounts": mount}],
                        "volumes": volumes}},
                },
                "workerGroupSpecs": [{
                    "groupName": "verifiers",
                    "replicas": workers, "minReplicas": 1, "maxReplicas": max(workers, 8),
                    "rayStartParams": {},
                    "template": {"metadata": {"labels": _labels(job)}, "spec": {
                        "containers": [{
                            "name": "ray-worker", "image": image,
                            "resources": {"requests": {"cpu": str(WORKER_CPUS), "memory": WORKER_MEMORY},
                                          "limits": {"cpu": str(WORKER_CPUS), "memory": WORKER_MEMORY}},
                            "volumeMounts": mount}],
                        "volumes": volumes}},
                }],
            },
        },
    }


def cluster_launcher(job: JobFile) -> dict[str, Any]:
    """A ``ray up`` config for machines you already have (the ``local`` provider); edit the addresses."""

    project = PROJECT_MOUNT
    return {
        "cluster_name": k8s_name(f"verify-{job.domain.name}")[:40],
        "provider": {"type": "local", "head_ip": "head.cluster.internal",
                     "worker_ips": [f"worker-{i + 1}.cluster.internal" for i in range(max(1, job.cluster.nodes))]},
        "auth": {"ssh_user": "ray"},
        "max_workers": max(1, job.cluster.nodes),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 5,
        "file_mounts": {},
        "setup_commands": [f"test -d {shlex.quote(project)}  # the project on a mount every node shares (edit the path)",
                           "python -m pip install --quiet 'graduation[ray]'"],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": ["ray stop", "ray start --head --port=6379 --num-cpus=0"],
        "worker_start_ray_commands": ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"],
    }


def ray_files(job: JobFile) -> dict[str, str]:
    """``ray/rayjob.yaml`` and ``ray/cluster.yaml`` of a job directory."""

    command = " ".join(shlex.quote(a) for a in verify_command(job, PROJECT_MOUNT))
    return {
        "ray/rayjob.yaml": dump_yaml(
            rayjob(job),
            f"KubeRay RayJob: verify the outputs of job {job.job} on a Ray cluster made for the run.\n"
            f"Write the checkpoint's outputs on data/eval.jsonl to {outputs_path(job)} (on the\n"
            f"{PROJECT_CLAIM} volume, mounted at {PROJECT_MOUNT}), then: kubectl apply -f ray/rayjob.yaml"),
        "ray/cluster.yaml": dump_yaml(
            cluster_launcher(job),
            f"Ray cluster launcher (machines you have): set head_ip and worker_ips, then\n"
            f"  ray up ray/cluster.yaml && ray exec ray/cluster.yaml {shlex.quote(command)}\n"
            f"The project must be on a file system every node mounts at {PROJECT_MOUNT} (or edit that path here)."),
    }


__all__ = ["RAYJOB_API", "RAY_VERSION", "cluster_launcher", "outputs_path", "ray_files", "rayjob", "verify_command"]
