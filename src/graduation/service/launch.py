"""Running a generated job here (CPU or one GPU): re-check the decision, train, record every round.

    outcome = run_job(db, root, "toy-arithmetic-grpo-20260101-120000-ab12")
    outcome = run_job(db, root, job_id, check_only=True)     # what launch.sh and slurm.sbatch call first

At launch the decision is taken again. The job refuses (``JobRefused``, exit 1; state ``refused``) when the
domain changed since it was generated (its content hash), when its data files changed, or when the mode is
no longer allowed. The decision it relies on is appended to the audit log. Each evaluation round verifies
the held-out answers with the domain's verifiers and writes ``training_round`` evidence (its own transaction),
so a domain can graduate from a job's own rounds; an interrupted or failed run leaves every round it
finished recorded and the job in state ``interrupted`` or ``failed``.

Over 400 lines because a launch is one sequence (seal, decision, lease, train, record each round, register
the checkpoints it wrote) whose failure paths must leave the registry consistent at every step.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.errors import EvidenceRefused, InputError, TrainingStopped
from graduation.jobs.bundle import BASE_MODEL_RUNTIME, locate, registry_url
from graduation.jobs.generate import MODE_ACTIONS, JobRefused
from graduation.jobs.model import JobFile, read_job_file
from graduation.jobs.seal import check_manifest
from graduation.models import manifest
from graduation.policy.model import default_policy_path
from graduation.rows import read_rows
from graduation.service.evaluation import evaluate
from graduation.service.jobs import current_decision
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.store.auditlog import anchor_path, record_decision
from graduation.store.domains import get_version
from graduation.store.jobs import claim, effective_state, get_job, heartbeat, lease_seconds, set_state
from graduation.store.models import find_model, register_model
from graduation.training.models import TINY_CORPORA, TINY_PREFIX, build_tiny, resolve_model, tiny_dir
from graduation.training.rewards import domain_rewards, python_identifier
from graduation.verifiers import VerifierPool


@dataclass
class RunOutcome:
    job: str
    state: str
    decision_id: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    model_path: str | None = None
    model: str | None = None  # the registered checkpoint (NAME@V) the job wrote last
    model_digest: str | None = None
    steps: int = 0
    seconds: float = 0.0
    reward_means: dict[str, list[float]] = field(default_factory=dict)
    stopped: str | None = None
    adapter: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_job(db: Any, job_id: str, bundle: Path | None = None) -> tuple[Any, JobFile, Path]:
    """The job's row, its ``job.yaml`` and its directory (``bundle`` when given, else where it was generated).

    The seal is checked before ``job.yaml`` is read: nothing of an edited bundle is believed."""

    with db.read() as session:
        row = get_job(session, job_id)
    path = Path(bundle).resolve() if bundle is not None else Path(row.path)
    if not (path / "job.yaml").is_file():
        raise InputError(f"{path}: no job.yaml here; --bundle names the job's directory (the one holding launch.sh)")
    check_seal(row, path)
    job = read_job_file(path / "job.yaml")
    if job.job != job_id:  # cannot happen with a sealed job.yaml; kept as a guard
        raise JobRefused(f"{path} holds job {job.job!r}, not {job_id!r}", ["another job"])
    if job.project_root is not None:
        raise JobRefused(f"job {job_id} was generated before job directories were self-contained (it names the "
                         f"project by its absolute path); regenerate it: registry jobs generate {job.domain.name}",
                         ["old job format"])
    return row, job, path


def check_seal(row: Any, job_dir: Path) -> None:
    """``JobRefused`` unless every file of the bundle is as sealed at generation (the registry keeps the hash)."""

    problems = check_manifest(job_dir, row.manifest_hash, json.loads(row.detail_json or "{}").get("manifest"))
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise JobRefused(f"job {row.id}: the bundle was modified since it was approved and sealed: {shown}; regenerate the job "
                         f"(registry jobs generate {row.domain})", ["bundle changed"])


def launch_policy(job: JobFile, job_dir: Path, project: Path | None, policy_path: Path | None) -> Path:
    """The policy a launch re-decides under: the one given; in the job's project, the project's own (so that a
    policy changed there is seen); a bundle copied elsewhere: the sealed copy it carries."""

    if policy_path is not None:
        return Path(policy_path)
    if project is not None:
        return default_policy_path(project)
    if not job.policy_file:
        raise InputError(f"job {job.job} carries no policy; pass --policy FILE")
    return job_dir / job.policy_file


def recheck(db: Any, project: Path | None, job: JobFile, job_dir: Path, policy_path: Path | None = None):
    """The decision now, or ``JobRefused`` naming what changed. Returns (decision, policy).

    The domain's files are the bundle's copies (``job_dir/project``): the decision's identity check compares
    them with the hashes of the registered version, as ``status`` does with the project's."""

    with db.read() as session:
        current = get_version(session, job.domain.name)
    if current.content_hash != job.domain.content_hash:
        raise JobRefused(f"domain {job.domain.name!r} changed since job {job.job} was generated (v{job.domain.version} "
                         f"-> v{current.version}); regenerate the job: registry jobs generate {job.domain.name}",
                         ["domain changed"])
    for split, pin in job.datasets.items():
        path = job_dir / pin.path
        if not path.is_file() or _sha256(path) != pin.sha256:
            raise JobRefused(f"{pin.path}: the {split} data of job {job.job} is missing or was modified since it was "
                             "generated; regenerate the job", ["data changed"])
    found, policy = current_decision(db, job_dir / job.project, job.domain.name,
                                     launch_policy(job, job_dir, project, policy_path))
    decision = found.decision
    action = MODE_ACTIONS[job.mode]
    ad = decision.actions[action]
    if not ad.allowed:
        reasons = list(ad.reasons) + [f"unmet: {u}" for u in ad.unmet] + [f"error: {e}" for e in ad.errors]
        lines = "\n".join(f"  - {r}" for r in reasons) or "  - no rule permits it (default deny)"
        raise JobRefused(f"{action} is no longer allowed for {job.domain.name} (phase {decision.phase}, decision "
                         f"{decision.id[:12]}; the job was approved by {job.decision.id[:12]}); not starting:\n{lines}",
                         reasons)
    if policy.digest != job.decision.policy_digest:  # allowed now, but not by the policy that approved the job
        raise JobRefused(f"job {job.job} was approved under policy {job.decision.policy_name!r} digest "
                         f"{(job.decision.policy_digest or '?')[:12]}, but the policy now is {policy.name!r} digest "
                         f"{policy.digest[:12]}; regenerate the job under the current policy", ["policy changed"])
    return decision, policy


def bundle_registry(bundle: Path, db_url: str | None) -> tuple[Any, Path | None]:
    """(the registry a bundle's launch checks against, the project it still sits in or None): ``db_url`` when
    given, else its project's embedded registry; a copy outside any project needs one (``InputError``)."""
    site = locate(bundle)
    url = registry_url(site, db_url)
    return Database(url, create=False, anchor=anchor_path(site.project, url) if site.project else None), site.project


def run_job(db: Any, root: Path | None, job_id: str, *, check_only: bool = False, policy_path: Path | None = None,
            max_steps: int | None = None, progress: bool = True, resume: bool = False,
            bundle: Path | None = None, say: Callable[[str], None] | None = None,
            steps: Callable[[str], Any] | None = None) -> RunOutcome:
    """Re-check, train, record every round. A run that stops without learning raises ``TrainingStopped`` (exit 1)
    after recording its rounds and the state ``failed`` with the reason.

    ``root``: the project the job belongs to (its default policy, the audit anchor, the tiny model's cache);
    None for a bundle copied out of its project. ``bundle``: run the job directory there (``launch.sh`` passes
    its own), checked against the seal the registry keeps; default: where the job was generated. With ``progress``,
    ``say`` prints a line and ``steps(mode)`` makes the training's step progress display (the CLI's bar)."""

    with db.read() as session:
        row = get_job(session, job_id)
    if effective_state(row) == "running":
        raise InputError(f"job {job_id} is already running ({row.lease_owner}); a second run is refused")
    try:
        row, job, job_dir = load_job(db, job_id, bundle)
        decision, policy = recheck(db, root, job, job_dir, policy_path)
    except JobRefused as exc:
        if not check_only:
            with db.write() as session:
                set_state(session, job_id, "refused", refused_reasons=exc.reasons)
        raise
    record_decision(db, decision, action=MODE_ACTIONS[job.mode], context="jobs run --check" if check_only
                    else "jobs run", policy_file=policy.file,
                    anchor=anchor_path(root, db.url) if root is not None else None, extra={"job": job_id})
    if check_only:
        return RunOutcome(job_id, row.state, decision.id)
    import socket
    import uuid

    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with db.write() as session:  # compare-and-set: a concurrent run of the same job is refused here
        claim(session, job_id, owner, pid=os.getpid(), started_at=time.time(), run_decision_id=decision.id)
    outcome = RunOutcome(job_id, "running", decision.id)
    previous = _terminate_as_interrupt()
    beat = _Heartbeat(db, job_id, owner)
    beat.start()
    try:
        _train(db, root, job, job_dir, outcome, max_steps=max_steps, progress=progress, resume=resume,
               say=say if progress else None, steps=steps if progress else None)
    except KeyboardInterrupt:
        with db.write() as session:
            set_state(session, job_id, "interrupted", rounds=outcome.rounds)
        raise
    except BaseException as exc:
        with db.write() as session:
            set_state(session, job_id, "failed", rounds=outcome.rounds, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    finally:
        beat.stop()
        _restore(previous)
    outcome.state = "failed" if outcome.stopped else "succeeded"
    extra = {"error": outcome.stopped} if outcome.stopped else {}
    if outcome.adapter:
        extra["adapter"] = outcome.adapter
    with db.write() as session:
        set_state(session, job_id, outcome.state, rounds=outcome.rounds, model_path=outcome.model_path,
                  steps=outcome.steps, seconds=round(outcome.seconds, 2), reward_means={
                      k: [round(x, 4) for x in v] for k, v in outcome.reward_means.items()}, **extra)
    if outcome.stopped:
        raise TrainingStopped(f"job {job_id} stopped after {outcome.steps} steps: {outcome.stopped}; its rounds are "
                              "recorded. Check that the rewards can tell answers apart (`registry verifiers check`) "
                              "and that the model can reach a correct answer at all, or raise no_signal_steps.")
    return outcome


class _Heartbeat:
    """Extends a running job's lease every third of its length; a killed run stops extending it."""

    def __init__(self, db: Any, job_id: str, owner: str) -> None:
        import threading

        self.db, self.job_id, self.owner = db, job_id, owner
        self.every = lease_seconds() / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                with self.db.write() as session:
                    heartbeat(session, self.job_id, self.owner)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the lease
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _terminate_as_interrupt():
    """SIGTERM (a scheduler stopping the run) ends it like Ctrl-C: the job is marked interrupted."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore(previous) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _rows(path: Path) -> list[dict[str, Any]]:
    return read_rows(path)


def _train(db: Any, root: Path | None, job: JobFile, job_dir: Path, outcome: RunOutcome, *, max_steps: int | None,
           progress: bool, resume: bool = False, say: Callable[[str], None] | None = None,
           steps: Callable[[str], Any] | None = None) -> None:
    from graduation.training.runner import RunSpec, run  # lazy: torch, transformers and trl

    spec = DomainSpec.model_validate(job.domain.spec)
    task = spec.task
    files_root = job_dir / job.project  # the bundle's copy of the domain's files, checked against the version
    model = base_model(job, job_dir, root, say)
    base = register_base(db, job, Path(model)) if job.peft else None  # an adapter's lineage names its base
    with VerifierPool() as pool:
        funcs, weights = domain_rewards(spec, files_root, pool=pool) if job.mode == "grpo" else ([], None)
        expected = [r.function for r in job.rewards]

        if job.mode == "grpo" and [python_identifier(f.__name__) for f in funcs] != expected:
            raise JobRefused(f"job {job.job}: its rewards {expected} no longer match the domain's verifiers; "
                             "regenerate the job", ["verifiers changed"])

        def on_round(r):
            checkpoint = register_checkpoint(db, job, r.checkpoint, r.step, base=base) \
                if r.checkpoint is not None else None
            rows = [{task.prompt_field: x.get("source_prompt", x["prompt"]), task.output_field: x["output"],
                     **({task.id_field: x[task.id_field]} if task.id_field and task.id_field in x else {}),
                     **({task.answer_field: x[task.answer_field]} if task.answer_field in x else {})}
                    for x in r.rows]

            try:
                gathered = evaluate(db, files_root, job.domain.name, rows, model=checkpoint, kind="training_round",
                                    job=job.job, step=r.step, pool=pool,
                                    name=f"registry/jobs/{job.job} round {r.round}", origin="generated",
                                    stopped=r.stopped)
            except EvidenceRefused as exc:
                # the same weights answered the same way as an earlier round (e.g. no learning at all): that is
                # not new evidence, so nothing is recorded; the job's own log says why
                summary = {"round": r.round, "step": r.step, "model": checkpoint.ref, "digest": checkpoint.digest,
                           "recorded": False, "why": str(exc)[:300], "seconds": round(r.seconds, 2)}
                if r.stopped:
                    summary["stopped"] = r.stopped
                outcome.rounds.append(summary)
                if say is not None:
                    say(f"round {r.round} (step {r.step}): same model and outputs as an earlier round; not recorded")
                return summary
            rec = gathered.record
            summary = {"round": r.round, "step": r.step, "model": checkpoint.ref, "digest": checkpoint.digest,
                       "n": rec.n, "passed": rec.passed,
                       "pass_rate": round(rec.pass_rate, 4), "wilson_lower": round(rec.wilson_lower, 4),
                       "shape_gap": round(rec.shape_gap, 4), "seconds": round(r.seconds, 2)}
            if r.stopped:
                summary["stopped"] = r.stopped
            outcome.rounds.append(summary)
            if say is not None:
                say(f"round {r.round} (step {r.step}): {rec.passed}/{rec.n} verified, pass rate {rec.pass_rate:.1%}, "
                     f"Wilson lower {rec.wilson_lower:.3f}, shape gap {rec.shape_gap:+.3f}")
            return summary

        train_rows = _rows(job_dir / job.datasets["train"].path)
        eval_rows = _rows(job_dir / job.datasets["eval"].path)
        run_spec = RunSpec(mode=job.mode, model=model, output_dir=job_dir / "output", train_rows=train_rows,
                           eval_rows=eval_rows, hyperparameters=dict(job.hyperparameters), runner=dict(job.runner),
                           reward_funcs=funcs, reward_weights=weights, on_round=on_round, prompt_field="prompt",
                           answer_field=task.answer_field, id_field=task.id_field, model_label=job.job,
                           progress=steps(job.mode) if steps is not None else None,
                           max_steps_override=max_steps, peft=dict(job.peft), resume=resume,
                           checkpoint_rounds=True, base_label=job.model)
        try:
            result = run(run_spec)
        except ValueError as exc:  # ConfigError: a bad hyperparameter in the domain file
            raise InputError(f"job {job.job}: {exc}") from None
    outcome.model_path = str(result.model_path)
    final = register_checkpoint(db, job, Path(result.model_path), result.steps, base=base)
    outcome.model = final.ref
    outcome.model_digest = final.digest
    outcome.steps = result.steps
    outcome.seconds = result.seconds
    outcome.reward_means = result.reward_means()
    outcome.stopped = result.stopped
    if result.adapter:
        merged = None
        if result.merged_path:
            merged = register_checkpoint(db, job, Path(result.merged_path), result.steps, base=base,
                                         adapter=final, name=f"{job.job}-merged")
        outcome.adapter = {"base": job.model, "base_model": base, "adapter": final.ref,
                           "adapter_path": str(result.model_path),
                           "merged": merged.ref if merged is not None else None,
                           "merged_path": str(result.merged_path) if result.merged_path else None,
                           "peft": dict(job.peft)}


def base_model(job: JobFile, job_dir: Path, project: Path | None, say: Callable[[str], None] | None = None) -> str:
    """The directory (or hub id) a job's run starts from: the bundle's ``model/``; an unbuilt ``tiny:`` model
    built into ``output/base-model`` (from the project's build, once per project, when the job is in one); else
    the id or path as given (a relative path: relative to the job directory)."""
    import shutil

    if job.model_dir:
        return str(job_dir / job.model_dir)
    if not job.model.startswith(TINY_PREFIX):
        candidate = job_dir / job.model
        return str(candidate) if not Path(job.model).is_absolute() and candidate.exists() else job.model
    target = job_dir / BASE_MODEL_RUNTIME
    if (target / "config.json").is_file():
        return str(target)
    name = job.model[len(TINY_PREFIX):]
    if say is not None and (project is None or not (tiny_dir(project, name) / "config.json").is_file()):
        say(f"building {job.model} (a tiny Llama and its tokenizer, pretrained here; once per project) ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    if project is not None:
        shutil.copytree(resolve_model(job.model, project), target)
    elif name in TINY_CORPORA:
        build_tiny(name, target)
    else:
        raise InputError(f"job {job.job}: unknown tiny model {job.model!r}")
    return str(target)


def register_base(db: Any, job: JobFile, path: Path) -> dict[str, Any]:
    """The base a LoRA adapter is trained on, as its lineage names it: ``{"model": NAME@V, "digest": ...}``.

    A local base directory is registered by the digest of its files (a no-op when that content is registered
    already, under whatever name); a hub id is looked up by name, and recorded with no digest when unknown."""

    if path.is_dir():
        digest = manifest(path).digest
        name = re.sub(r"[^A-Za-z0-9._/+-]", "-", job.model).strip("-./+") or "base"
        info, _created = db.transact(lambda s: register_model(
            s, name[:128], digest=digest, kind="manifest", path=str(path.resolve()),
            lineage={"registered_by": f"job {job.job} (the base of its adapter)", "source": job.model}))
        return {"model": info.ref, "digest": info.digest, "name": job.model}
    with db.read() as session:
        try:
            found = find_model(session, job.model)
        except InputError:
            found = None
    return {"model": found.ref if found else None, "digest": found.digest if found else None, "name": job.model}


def register_checkpoint(db: Any, job: JobFile, path: Path, step: int, *, base: dict[str, Any] | None = None,
                        adapter: Any = None, name: str | None = None):
    """Register a checkpoint the job wrote (name: the job; a new version per new content), with its lineage.

    ``base``: the checkpoint is a LoRA adapter (``kind: adapter``) of that registered base, or, with ``adapter``
    (the registered adapter), that adapter merged into it (``kind: merged``). Each is its own artifact: its
    own digest, its own rounds; evidence of the base never counts for it, nor the reverse."""

    lineage = {"base_model": job.model, "job": job.job, "step": step, "domain": job.domain.name,
               "domain_version": job.domain.version, "from_job": job.from_job,
               "datasets": {k: v.sha256 for k, v in sorted(job.datasets.items())},
               "decision": job.decision.id, "policy_digest": job.decision.policy_digest}
    if base is not None:
        lineage["kind"] = "merged" if adapter is not None else "adapter"
        lineage["base"] = dict(base)
        lineage["peft"] = dict(job.peft)
        if adapter is not None:
            lineage["adapter"] = {"model": adapter.ref, "digest": adapter.digest}
    digest = manifest(path).digest
    info, _created = db.transact(lambda s: register_model(s, name or job.job, digest=digest, kind="manifest",
                                                          path=str(Path(path).resolve()), lineage=lineage))
    return info


__all__ = ["RunOutcome", "check_seal", "load_job", "recheck", "register_checkpoint", "run_job"]
