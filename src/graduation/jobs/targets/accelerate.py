"""``accelerate``: ``launch.sh CONFIG`` runs ``accelerate launch`` with one of the configs in ``accelerate/``."""

from __future__ import annotations

from typing import Any

from graduation.jobs.files import dump_yaml
from graduation.jobs.targets import Target, register

ACCELERATE_CONFIGS = ("single_gpu", "multi_gpu", "zero3", "fsdp2")


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


def launch(job: str, job_dir: str, cluster: Any) -> list[str]:
    return [f"{job_dir}/launch.sh zero3", f"{job_dir}/launch.sh multi_gpu", f"{job_dir}/launch.sh single_gpu"]


def files(job: Any, env: Any, context: dict[str, Any]) -> dict[str, str]:
    return {f"accelerate/{name}.yaml": dump_yaml(
        accelerate_config(name, job.cluster.gpus_per_node),
        f"accelerate config ({name}) of job {job.job}; used by launch.sh and slurm.sbatch.")
        for name in ACCELERATE_CONFIGS}


register(Target("accelerate", "accelerate launch on one node (launch.sh CONFIG)", "zero3", launch, files))
