"""The resolved spec of a generated job (``job.yaml``), as a pydantic model, and its reader.

A job file pins everything a run depends on: the domain version and its content hash (with the full spec),
the decision that approved it (id, phase, policy digest), the datasets and their SHA-256, the model, the
trainer's hyperparameters and the runner's own keys, and the reward functions with their verifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graduation.errors import InputError
from graduation.jobs.targets import TARGETS
from graduation.training.keys import RUNNER_KEYS

JOB_NAME = r"^[a-z0-9](?:[a-z0-9-]{0,94}[a-z0-9])?$"
JOB_FORMAT = 2  # 2: a self-contained bundle (project/, model/, paths relative to the job directory)


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainPin(Frozen):
    name: str
    version: int
    content_hash: str
    basis_hash: str
    risk: str
    source_file: str
    spec: dict[str, Any]


class DecisionPin(Frozen):
    id: str
    action: str
    phase: str
    allowed: bool
    reasons: list[str]
    policy_name: str = ""
    policy_digest: str = ""


class DatasetPin(Frozen):
    path: str
    sha256: str
    rows: int = Field(ge=0)


class RewardPin(Frozen):
    function: str
    verifier: str
    kind: str
    role: Literal["substance", "format"]
    version: str
    weight: float


class ClusterPin(Frozen):
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    vllm: bool = False
    image: str = "graduation-trl:latest"


class JobFile(Frozen):
    format: int = JOB_FORMAT
    job: str = Field(pattern=JOB_NAME)
    mode: Literal["grpo", "sft"]
    target: Literal[tuple(TARGETS)]  # type: ignore[valid-type]  (the registered targets)
    created_at: str
    project_root: str | None = Field(None, description="Format 1 only: the absolute project path (not relocatable).")
    project: str = Field("project", description="The bundle's copy of the domain's files and policy (relative).")
    policy_file: str | None = Field(None, description="The policy that approved the job, inside the bundle.")
    model_dir: str | None = Field(None, description="The starting model, copied into the bundle (relative).")
    domain: DomainPin
    decision: DecisionPin
    model: str
    from_job: str | None = None
    datasets: dict[str, DatasetPin]
    hyperparameters: dict[str, Any]
    runner: dict[str, Any] = Field(default_factory=dict)
    rewards: list[RewardPin] = Field(default_factory=list)
    cluster: ClusterPin = Field(default_factory=ClusterPin)
    preset: dict[str, Any] = Field(default_factory=dict, description="Size class and where each setting came from.")
    peft: dict[str, Any] = Field(default_factory=dict, description="LoRA settings ({} = full fine-tuning).")


def read_job_file(path: Path | str) -> JobFile:
    """Read and validate ``job.yaml``; every problem names the file and the field."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such job file; was the job directory moved or deleted?") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the job file: {exc}") from None
    try:
        return JobFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"{path}: invalid job file ({problems}); regenerate it with `registry jobs generate`") from None


__all__ = ["RUNNER_KEYS", "ClusterPin", "DatasetPin", "DecisionPin", "DomainPin", "JOB_NAME", "JobFile", "RewardPin", "read_job_file"]
