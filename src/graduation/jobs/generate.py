"""Writing a job directory and recording the job: all of it, or nothing.

    approval = Approval.from_decision(decision, "train:grpo")    # the caller asks the policy engine
    job = generate_job(db, root, plan, approval)                # JobRefused (exit 1) when not allowed

``generate_job`` refuses before writing anything when the approval denies the mode. Otherwise it writes the
data files, ``job.yaml`` and every rendered file into a temporary directory beside the final one, records the
job in the registry and renames the directory into place inside the same transaction: a failure at any
point leaves neither a half-written directory nor a job row without its files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graduation.errors import InputError, JobRefused
from graduation.jobs.bundle import PROJECT_DIR, copy_model, copy_project, model_label
from graduation.jobs.model import JOB_NAME, ClusterPin, DatasetPin, DecisionPin, DomainPin, JobFile, RewardPin
from graduation.jobs.render import render_job
from graduation.jobs.seal import manifest, manifest_hash
from graduation.jobs.targets import TARGETS as _TARGET_COMMANDS
from graduation.spec import sha256_json
from graduation.store.jobs import add_job

MODE_ACTIONS = {"grpo": "train:grpo", "sft": "train:sft"}
TARGETS = tuple(_TARGET_COMMANDS)
EXECUTABLE = ("launch.sh", "slurm.sbatch")


@dataclass(frozen=True)
class Approval:
    """What the policy engine said about one training action: obtained by the caller, checked here."""

    allowed: bool
    reasons: list[str]
    decision_id: str
    action: str
    phase: str = ""
    policy_name: str = ""
    policy_digest: str = ""

    @classmethod
    def from_decision(cls, decision: Any, action: str) -> "Approval":
        ad = decision.actions[action]
        reasons = ad.why_lines()
        return cls(bool(ad.allowed), reasons, decision.id, action, decision.phase, decision.policy_name,
                   decision.policy_digest)

    def pin(self) -> DecisionPin:
        return DecisionPin(id=self.decision_id, action=self.action, phase=self.phase, allowed=self.allowed,
                           reasons=self.reasons, policy_name=self.policy_name, policy_digest=self.policy_digest)


@dataclass
class JobPlan:
    """Everything a job directory is made of, resolved by the caller (see ``graduation.service.jobs``)."""

    domain: DomainPin
    mode: str
    target: str
    model: str
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    hyperparameters: dict[str, Any]
    runner: dict[str, Any] = field(default_factory=dict)
    rewards: list[RewardPin] = field(default_factory=list)
    from_job: str | None = None
    cluster: ClusterPin = field(default_factory=ClusterPin)
    name: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    preset: dict[str, Any] = field(default_factory=dict)
    peft: dict[str, Any] = field(default_factory=dict)
    #: what the bundle carries (``graduation.jobs.bundle``): the domain version's files (project-relative), the
    #: policy file that approved the job and its parsed ``Policy``, and a model directory inside the project
    project_files: list[str] = field(default_factory=list)
    policy_path: Path | None = None
    policy: Any = None
    model_source: Path | None = None


@dataclass(frozen=True)
class GeneratedJob:
    id: str
    path: Path
    job: JobFile
    files: list[str]


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not re.match(JOB_NAME, name):
        raise InputError(f"job name {name!r} is not valid: use 1-96 lowercase letters, digits and dashes, starting "
                         "and ending with a letter or digit")
    return name


def new_job_id(domain: str, mode: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    suffix = f"-{mode}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    return validate_name(domain[: 96 - len(suffix)].rstrip("-") + suffix)


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def generate_job(db: Any, root: Path, plan: JobPlan, approval: Approval) -> GeneratedJob:
    """Write ``registry/jobs/<id>/`` and record the job, or raise ``JobRefused`` having written nothing."""

    if plan.mode not in MODE_ACTIONS:
        raise InputError(f"--mode {plan.mode!r}: use grpo or sft (or auto)")
    if plan.target not in TARGETS:
        raise InputError(f"--target {plan.target!r}: use one of {', '.join(TARGETS)}")
    if approval.action != MODE_ACTIONS[plan.mode]:
        raise InputError(f"the approval is for {approval.action}, not {MODE_ACTIONS[plan.mode]}")
    if not approval.allowed:
        reasons = "\n".join(f"  - {r}" for r in approval.reasons) or "  - no rule permits it (default deny)"
        raise JobRefused(f"{approval.action} is denied for {plan.domain.name} (phase {approval.phase or '?'}, "
                         f"decision {approval.decision_id[:12]}); no job was written:\n{reasons}", approval.reasons)
    if not plan.train_rows:
        raise InputError(f"{plan.domain.name}: no training rows for {plan.mode} (the domain needs trusted ground truth "
                         "with split train or all)")
    job_id = validate_name(plan.name) if plan.name else new_job_id(plan.domain.name, plan.mode)
    jobs_dir = Path(root) / "registry" / "jobs"
    final = jobs_dir / job_id
    if final.exists():
        raise InputError(f"{final}: a job directory with this name exists; pick another --name")
    jobs_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{job_id}.", suffix=".tmp", dir=jobs_dir))
    renamed = False
    try:
        tmp.chmod(0o755)
        datasets = {}
        for split, rows in (("train", plan.train_rows), ("eval", plan.eval_rows)):
            data = jsonl(rows)
            rel = f"data/{split}.jsonl"
            (tmp / "data").mkdir(exist_ok=True)
            (tmp / rel).write_bytes(data)
            datasets[split] = DatasetPin(path=rel, sha256=_sha256(data), rows=len(rows))

        policy_file = None
        if plan.policy_path is not None:
            policy_file = copy_project(tmp, root, plan.project_files, plan.policy_path, plan.policy)
        model_dir = copy_model(tmp, plan.model_source) if plan.model_source is not None else None
        (tmp / "logs").mkdir()  # Slurm writes its output there (#SBATCH --output); not part of the seal
        job = JobFile(job=job_id, mode=plan.mode, target=plan.target,
                      created_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
                      project=PROJECT_DIR, policy_file=policy_file, model_dir=model_dir,
                      domain=plan.domain, decision=approval.pin(),
                      model=model_label(plan.model, root), from_job=plan.from_job, datasets=datasets,
                      hyperparameters=plan.hyperparameters, runner=plan.runner, rewards=plan.rewards,
                      cluster=plan.cluster, preset=plan.preset, peft=plan.peft)
        files = render_job(job)
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if rel in EXECUTABLE:
                path.chmod(0o755)

        sealed = manifest(tmp)  # every file of the bundle, as approved
        detail = {"job_hash": sha256_json(job.model_dump(mode="json")), "datasets": {
            k: v.model_dump() for k, v in datasets.items()}, **plan.detail, "manifest": sealed}
        with db.write() as session:
            add_job(session, id=job_id, domain=plan.domain.name, domain_version=plan.domain.version, mode=plan.mode,
                    target=plan.target, path=str(final), decision_id=approval.decision_id, from_job=plan.from_job,
                    detail=detail, manifest_hash=manifest_hash(sealed))
            os.rename(tmp, final)
            renamed = True
    except BaseException:
        shutil.rmtree(final if renamed else tmp, ignore_errors=True)  # the row was not committed either
        raise
    return GeneratedJob(job_id, final, job, sorted(sealed))


__all__ = ["Approval", "GeneratedJob", "JobPlan", "JobRefused", "MODE_ACTIONS", "TARGETS", "generate_job",
           "new_job_id", "validate_name"]
