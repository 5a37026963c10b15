"""Training jobs: generated from approved decisions, run with TRL, feeding evidence back.

    plan_job(db, root, domain, mode="auto", target="local", from_job=None) -> PlanResult   decide + data + write
    generate_job(db, root, plan, approval) -> GeneratedJob       write a job directory and record it (or refuse)
    run_job(db, root, job_id, check_only=False, bundle=None) -> RunOutcome   re-check seal + decision, train, record

A job directory is a self-contained bundle (``graduation.jobs.bundle``): the domain's files, the policy and a
local starting model are copied into it, every generated path is relative to it, and it runs wherever it is
copied, checked against the seal and the decision in the registry.

Nothing here imports torch, transformers or trl; ``graduation.training`` does, and only when a job runs or
an SFT set is crystallised.
"""

from graduation.jobs.generate import Approval, GeneratedJob, JobPlan, JobRefused, generate_job
from graduation.jobs.model import JobFile, read_job_file

__all__ = ["Approval", "GeneratedJob", "JobFile", "JobPlan", "JobRefused", "generate_job", "read_job_file"]
