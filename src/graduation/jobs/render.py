"""Rendering a job directory's files from a ``JobFile``: structured files by dumping data, shell by Jinja2.

    files = render_job(job)     # {relative path: text}, nothing written

Nothing rendered names the project's location: every path is relative to the job directory (the bundle,
``graduation.jobs.bundle``), and the scripts find that directory from their own location.

- ``job.yaml``, ``recipe.yaml`` (``trl grpo|sft --config``), ``accelerate/*.yaml`` and ``trainjob.yaml``
  (Kubeflow Trainer v2) are Python data dumped with ``yaml.safe_dump``: no value is pasted into YAML text.
- ``ray/rayjob.yaml`` (KubeRay) and ``ray/cluster.yaml`` (``ray up``) verify the job's outputs on a Ray cluster
  (``graduation.jobs.ray_manifests``), dumped the same way.
- ``launch.sh`` and ``slurm.sbatch`` are Jinja2 templates rendered with ``StrictUndefined`` (a missing
  value is an error, not an empty string) and every value that reaches the shell goes through the ``q``
  filter (``shlex.quote``); the few values written bare (mode, accelerate config name, Slurm job name)
  are checked against tight patterns first.
- ``rewards.py`` (GRPO) names one function per verifier; the names are checked Python identifiers.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from graduation.jobs.bundle import BASE_MODEL_RUNTIME
from graduation.jobs.model import JobFile
from graduation.training.models import TINY_PREFIX

ACCELERATE_CONFIGS = ("single_gpu", "multi_gpu", "zero3", "fsdp2")
TARGET_ACCELERATE = {"local": "local", "accelerate": "zero3", "slurm": "zero3", "kubernetes": "zero3"}
TRAINJOB_API = "trainer.kubeflow.org/v1alpha1"
TORCH_REPLICATED_JOB = "node"  # the replicated job of Kubeflow's torch-distributed runtime
REGISTRY_SECRET = "graduation-registry"  # a Secret with key ``url``: the registry's database URL
JOB_IN_IMAGE = "/workspace/job"  # where the Dockerfile puts the bundle
_SAFE_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("graduation.jobs", "templates"), undefined=StrictUndefined,
                      autoescape=False, keep_trailing_newline=True, trim_blocks=False)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env


def _bare(value: str, what: str) -> str:
    """A value written into a script unquoted: letters, digits, '.', '_' and '-' only."""
    if not _SAFE_WORD.match(value):
        raise ValueError(f"{what} {value!r} cannot be written into a script unquoted")
    return value


def dump_yaml(data: Any, header: str = "") -> str:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body


# -- structured files ------------------------------------------------------------------------------------

def recipe(job: JobFile) -> dict[str, Any]:
    """The TRL recipe: ScriptArguments + GRPOConfig/SFTConfig + ModelConfig + DatasetMixtureConfig fields."""
    data: dict[str, Any] = {
        "model_name_or_path": recipe_model(job),
        "output_dir": "output/trainer",
        "datasets": [{"path": "json", "data_files": job.datasets["train"].path, "split": "train"}],
        "dataset_train_split": "train",
        "report_to": "none",
        "bf16": True,
        "gradient_checkpointing": True,
    }
    data.update(job.hyperparameters)
    if job.peft:
        data.update(peft_fields(job.peft))
    if job.mode == "grpo":
        data["reward_funcs"] = [f"rewards.{r.function}" for r in job.rewards]
        data["reward_weights"] = [r.weight for r in job.rewards]
    return data


def peft_fields(peft: dict[str, Any]) -> dict[str, Any]:
    """TRL ``ModelConfig`` fields for LoRA (``use_peft``) and QLoRA (4-bit base, bitsandbytes)."""
    out: dict[str, Any] = {"use_peft": True}
    for key in ("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"):
        if key in peft:
            out[key] = peft[key]
    if peft.get("method") == "qlora":
        out.update(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True)
    return out


def recipe_model(job: JobFile) -> str:
    """What ``from_pretrained`` loads, relative to the job directory: the bundled ``model/``; for a ``tiny:``
    model not built at generation, ``output/base-model`` (``registry jobs run`` builds it there); else the
    hub id or path as given."""

    if job.model_dir:
        return job.model_dir
    if job.model.startswith(TINY_PREFIX):
        return BASE_MODEL_RUNTIME
    return job.model


def accelerate_config(name: str, gpus_per_node: int) -> dict[str, Any]:
    base = {"compute_environment": "LOCAL_MACHINE", "debug": False, "machine_rank": 0,
            "main_training_function": "main", "mixed_precision": "bf16", "num_machines": 1,
            "rdzv_backend": "static", "same_network": True, "tpu_env": [], "tpu_use_cluster": False,
            "tpu_use_sudo": False, "use_cpu": False, "downcast_bf16": "no"}
    if name == "single_gpu":
        return {**base, "distributed_type": "NO", "gpu_ids": "0", "num_processes": 1}
    if name == "multi_gpu":
        return {**base, "distributed_type": "MULTI_GPU", "gpu_ids": "all", "num_processes": gpus_per_node}
    if name == "zero3":
        return {**base, "distributed_type": "DEEPSPEED", "num_processes": gpus_per_node, "deepspeed_config": {
            "deepspeed_multinode_launcher": "standard", "offload_optimizer_device": "none",
            "offload_param_device": "none", "zero3_init_flag": True, "zero3_save_16bit_model": True,
            "zero_stage": 3}}
    if name == "fsdp2":
        return {**base, "distributed_type": "FSDP", "num_processes": gpus_per_node, "enable_cpu_affinity": False,
                "fsdp_config": {"fsdp_activation_checkpointing": False,
                                "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
                                "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT",
                                "fsdp_version": 2}}
    raise ValueError(f"unknown accelerate config {name!r}; use one of {', '.join(ACCELERATE_CONFIGS)}")


def k8s_name(job_id: str) -> str:
    """A DNS-1123 label (63 characters at most) for the job."""
    name = re.sub(r"[^a-z0-9-]", "-", job_id.lower()).strip("-")[:63].strip("-")
    return name or "graduation-job"


def trainjob(job: JobFile, workdir: str) -> dict[str, Any]:
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


# -- the whole directory ------------------------------------------------------------------------------

def render_job(job: JobFile) -> dict[str, str]:
    """Every file of the job directory (except data), as text by relative path."""
    env = _environment()
    c = job.cluster
    mode = _bare(job.mode, "mode")
    default_accelerate = TARGET_ACCELERATE[job.target]
    recipe_command = f"trl {mode} --config recipe.yaml"
    files: dict[str, str] = {
        "job.yaml": dump_yaml(job.model_dump(mode="json"), f"Job {job.job}: the resolved spec it runs.\n"
                              f"Run: registry jobs run {job.job}"),
        "recipe.yaml": dump_yaml(recipe(job), f"TRL recipe of job {job.job} ({mode}).\n"
                                 f"Run from this directory: {recipe_command}\n"
                                 f"  or: accelerate launch --config_file accelerate/zero3.yaml -m trl.scripts.{mode}"
                                 " --config recipe.yaml"),
    }
    for name in ACCELERATE_CONFIGS:
        files[f"accelerate/{name}.yaml"] = dump_yaml(
            accelerate_config(name, c.gpus_per_node),
            f"accelerate config ({name}) of job {job.job}; used by launch.sh and slurm.sbatch.")
    files["trainjob.yaml"] = dump_yaml(
        trainjob(job, JOB_IN_IMAGE),
        f"Kubeflow Trainer v2 TrainJob of job {job.job}.\n"
        "Its init container re-checks the seal and the decision on every node before training starts.\n"
        "Build the image (see Dockerfile), create the Secret graduation-registry (key url), then:\n"
        "kubectl apply -f trainjob.yaml")
    files["Dockerfile"] = env.get_template("Dockerfile.j2").render(
        job_id=job.job, job_dir=JOB_IN_IMAGE, peft=bool(job.peft))

    from graduation.jobs.ray_manifests import ray_files  # lazy: ray_manifests imports this module

    files.update(ray_files(job))  # verification of the job's outputs on a Ray cluster
    context = {
        "job_id": job.job, "mode": mode, "domain": job.domain.name, "decision_id": job.decision.id,
        "model": recipe_model(job),
        "gpus_per_node": c.gpus_per_node, "recipe_command": recipe_command,
        "default_accelerate": default_accelerate,
        "default_how": "run here (registry jobs run)" if default_accelerate == "local"
        else f"accelerate launch with {default_accelerate}",
    }
    files["launch.sh"] = env.get_template("launch.sh.j2").render(**context)
    files["slurm.sbatch"] = env.get_template("slurm.sbatch.j2").render(
        **context, train_nodes=c.nodes, total_nodes=c.nodes + (1 if c.vllm else 0), vllm=c.vllm,
        accelerate_config="zero3", slurm_name=_bare(k8s_name(job.job), "Slurm job name"), cpus_per_task=16,
        time_limit="24:00:00", main_port=29500, vllm_port=8000)
    sources = job.preset.get("sources", {})
    settings = [(k, v, sources.get(k, "domain")) for k, v in recipe(job).items() if k in job.hyperparameters]
    files["README.md"] = env.get_template("README.md.j2").render(
        **context, domain_version=job.domain.version, phase=job.decision.phase, vllm=c.vllm, nodes=c.nodes,
        image=c.image, size=job.preset.get("size"), peft=job.peft, settings=settings, model_dir=job.model_dir)
    files[".dockerignore"] = "# what a run writes is not part of the image\noutput/\nlogs/\n"
    if job.mode == "grpo":
        for r in job.rewards:
            if not _IDENT.match(r.function):
                raise ValueError(f"reward function name {r.function!r} is not a Python identifier")
        files["rewards.py"] = env.get_template("rewards.py.j2").render(
            job_id=job.job, domain=job.domain.name, rewards=[r.model_dump() for r in job.rewards])
    return files


__all__ = ["ACCELERATE_CONFIGS", "accelerate_config", "dump_yaml", "k8s_name", "recipe", "render_job", "trainjob"]
