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
from typing import Any

from graduation.jobs.bundle import BASE_MODEL_RUNTIME
from graduation.jobs.files import bare, dump_yaml, environment
from graduation.jobs.model import JobFile
from graduation.jobs.ray_manifests import ray_files
from graduation.jobs.targets import TARGETS
from graduation.training.models import TINY_PREFIX

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


# -- the whole directory ------------------------------------------------------------------------------

def render_job(job: JobFile) -> dict[str, str]:
    """Every file of the job directory (except data), as text by relative path: what every job has, then
    each target's launch files (``graduation.jobs.targets``)."""
    env = environment()
    c = job.cluster
    mode = bare(job.mode, "mode")
    default_accelerate = TARGETS[job.target].accelerate
    recipe_command = f"trl {mode} --config recipe.yaml"
    files: dict[str, str] = {
        "job.yaml": dump_yaml(job.model_dump(mode="json"), f"Job {job.job}: the resolved spec it runs.\n"
                              f"Run: registry jobs run {job.job}"),
        "recipe.yaml": dump_yaml(recipe(job), f"TRL recipe of job {job.job} ({mode}).\n"
                                 f"Run from this directory: {recipe_command}\n"
                                 f"  or: accelerate launch --config_file accelerate/zero3.yaml -m trl.scripts.{mode}"
                                 " --config recipe.yaml"),
    }
    files.update(ray_files(job))  # verification of the job's outputs on a Ray cluster
    context = {
        "job_id": job.job, "mode": mode, "domain": job.domain.name, "decision_id": job.decision.id,
        "model": recipe_model(job),
        "gpus_per_node": c.gpus_per_node, "recipe_command": recipe_command,
        "default_accelerate": default_accelerate,
        "default_how": "run here (registry jobs run)" if default_accelerate == "local"
        else f"accelerate launch with {default_accelerate}",
    }
    for target in TARGETS.values():
        files.update(target.files(job, env, context))
    sources = job.preset.get("sources", {})
    settings = [(k, v, sources.get(k, "domain")) for k, v in recipe(job).items() if k in job.hyperparameters]
    files["README.md"] = env.get_template("README.md.j2").render(
        **context, domain_version=job.domain.version, phase=job.decision.phase, vllm=c.vllm, nodes=c.nodes,
        image=c.image, size=job.preset.get("size"), peft=job.peft, settings=settings, model_dir=job.model_dir)
    if job.mode == "grpo":
        for r in job.rewards:
            if not _IDENT.match(r.function):
                raise ValueError(f"reward function name {r.function!r} is not a Python identifier")
        files["rewards.py"] = env.get_template("rewards.py.j2").render(
            job_id=job.job, domain=job.domain.name, rewards=[r.model_dump() for r in job.rewards])
    return files


__all__ = ["recipe", "recipe_model", "render_job"]
