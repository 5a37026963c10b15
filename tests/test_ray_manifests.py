"""The Ray files written beside each training job: a KubeRay RayJob and a `ray up` config, both runnable."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from graduation.jobs.model import ClusterPin
from tests.test_jobs import env, graduate  # noqa: F401 - the fixture

RAY_SCHEMA = "autoscaler/ray-schema.json"


def _job_dir(env, name="ray", nodes=3):  # noqa: F811
    from graduation.service.jobs import plan_job

    root, db = env
    graduate(db, root)
    result = plan_job(db, root, "toy-arithmetic", mode="grpo", target="kubernetes", name=name,
                      model="Qwen/Qwen2.5-7B-Instruct", cluster=ClusterPin(nodes=nodes, gpus_per_node=8))
    return root, result.job.path


def _evaluate_options() -> set[str]:
    import typer.main

    from graduation.cli import app

    group = typer.main.get_command(app)
    command = group.commands["evaluate"]
    return {opt for param in command.params for opt in param.opts}


def _check_command(args: list[str], root_options=("--project",)) -> None:
    assert args[0] == "registry" and args[1] in root_options
    evaluate = args.index("evaluate")
    options = {a for a in args[evaluate + 1:] if a.startswith("--")}
    assert options <= _evaluate_options(), options - _evaluate_options()
    assert args[args.index("--engine") + 1] == "ray" and args[args.index("--address") + 1] == "auto"
    assert args[evaluate + 1] == "toy-arithmetic"


def test_the_rayjob_runs_the_verification_on_a_cluster_made_for_it(env):  # noqa: F811
    _root, job_dir = _job_dir(env)
    job = yaml.safe_load((job_dir / "ray" / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert job["metadata"]["name"].startswith("verify-") and len(job["metadata"]["name"]) <= 63
    spec = job["spec"]
    args = shlex.split(spec["entrypoint"])
    _check_command(args)
    assert args[args.index("--outputs") + 1] == f"registry/jobs/{job_dir.name}/outputs/eval.jsonl"
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0"}  # the driver alone on the head
    (head_container,) = head["template"]["spec"]["containers"]
    assert head_container["image"] == "graduation-trl:latest"
    assert {p["containerPort"] for p in head_container["ports"]} >= {6379, 8265, 10001}
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["groupName"] and workers["replicas"] == 3 and workers["minReplicas"] <= 3 <= workers["maxReplicas"]
    for group in (head, workers):
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        assert container["volumeMounts"] == [{"name": "project", "mountPath": "/workspace/project"}]
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "graduation-project"
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())
    assert args[args.index("--project") + 1] == "/workspace/project"


def test_the_rayjob_matches_the_kuberay_crd_when_given(env):  # noqa: F811
    """Set GRADUATION_KUBERAY_CRD to ray.io_rayjobs.yaml (kuberay's ray-operator/config/crd/bases)."""
    crd_path = os.environ.get("GRADUATION_KUBERAY_CRD")
    if not crd_path:
        pytest.skip("GRADUATION_KUBERAY_CRD not set")
    import jsonschema

    crd = yaml.safe_load(Path(crd_path).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    _root, job_dir = _job_dir(env)
    job = yaml.safe_load((job_dir / "ray" / "rayjob.yaml").read_text())
    jsonschema.validate(job, version["schema"]["openAPIV3Schema"])
    broken = json.loads(json.dumps(job))
    broken["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, version["schema"]["openAPIV3Schema"])


def test_the_cluster_launcher_config_is_valid_for_ray_up(env):  # noqa: F811
    import jsonschema

    root, job_dir = _job_dir(env, nodes=2)
    text = (job_dir / "ray" / "cluster.yaml").read_text()
    config = yaml.safe_load(text)
    spec = importlib.util.find_spec("ray")  # the schema ships with ray; ray itself is not imported
    if spec is None:
        pytest.skip("ray is not installed (graduation[ray])")
    schema = json.loads((Path(spec.origin).parent / RAY_SCHEMA).read_text())
    jsonschema.validate(config, schema)
    assert config["provider"]["type"] == "local" and len(config["provider"]["worker_ips"]) == 2
    assert any("--head" in c for c in config["head_start_ray_commands"])
    exec_line = next(line for line in text.splitlines() if "ray exec" in line)
    command = shlex.split(exec_line.split("ray exec ray/cluster.yaml", 1)[1])
    args = shlex.split(command[0])
    _check_command(args)
    assert args[args.index("--project") + 1] == "/workspace/project"  # a mount point, never this machine's path
    assert str(root) not in text
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**config, "max_workers": "two"}, schema)
