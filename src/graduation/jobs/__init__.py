"""Training jobs: generated from approved decisions, run with TRL, feeding evidence back.

    plan_job(db, root, domain, mode="auto", target="local", from_job=None) -> PlanResult   decide + data + write
    generate_job(db, root, plan, approval) -> GeneratedJob       write a job directory and record it (or refuse)
    run_job(db, root, job_id, check_only=False) -> RunOutcome    re-check the decision, train, record rounds

Nothing here imports torch, transformers or trl; ``graduation.training`` does, and only when a job runs or
an SFT set is crystallised.
"""

from graduation.jobs.generate import Approval, GeneratedJob, JobPlan, JobRefused, generate_job
from graduation.jobs.model import JobFile, read_job_file

__all__ = ["Approval", "GeneratedJob", "JobFile", "JobPlan", "JobRefused", "generate_job", "read_job_file"]
