"""Job commands: ``registry jobs generate|run|list|show``.

Exit codes: 0 done, 1 refused by the decision (the reasons are printed; nothing was written), 2 input error.
"""

from __future__ import annotations

from pathlib import Path

import typer

from graduation.cli.app import JSON_OPTION, POLICY_OPTION, app, command, print_json, state
from graduation.cli.complete import domain_names, job_ids
from graduation.jobs.targets import TARGETS

jobs_app = typer.Typer(help="Training jobs: generate from an approved decision, run, list, show.",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")



@command("generate", group=jobs_app)
def generate_cmd(
    ctx: typer.Context,
    domain: str = typer.Argument(..., help="A registered domain.", autocompletion=domain_names),
    mode: str = typer.Option("auto", "--mode", "-m", help="auto (GRPO in discovery, SFT once graduated), grpo, sft."),
    target: str = typer.Option("local", "--target", "-t", help="Where it runs: " + ", ".join(TARGETS) + "."),
    from_job: str | None = typer.Option(None, "--from", metavar="JOB", autocompletion=job_ids,
                                        help="SFT only: crystallise the verified completions of this trained job."),
    name: str | None = typer.Option(None, "--name", help="Job id (default: <domain>-<mode>-<time>-<random>)."),
    model: str | None = typer.Option(None, "--model", help="Model path or cached hub id (default: the domain's "
                                                           "training.base_model)."),
    nodes: int = typer.Option(1, "--nodes", min=1, help="Training nodes (Slurm, Kubernetes)."),
    gpus_per_node: int = typer.Option(8, "--gpus-per-node", min=1, help="GPUs per node."),
    vllm: bool = typer.Option(False, "--vllm/--no-vllm", help="Slurm: one extra node runs `trl vllm-serve`."),
    image: str = typer.Option("graduation-trl:latest", "--image",
                              help="Container image with graduation[train] installed (Kubernetes); build and push your own."),
    model_size: str | None = typer.Option(None, "--model-size", metavar="CLASS",
                                          help="Preset size class: tiny, 1b, 8b, 70b or xl (default: from the "
                                               "model's config.json or its name)."),
    settings: list[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                       help="Override a trainer or runner setting, e.g. --set learning_rate=1e-6 "
                                            "(repeatable; wins over the preset and the domain file)."),
    peft: str | None = typer.Option(None, "--peft", metavar="METHOD",
                                    help="Train a LoRA adapter instead of every weight: lora, or qlora (4-bit "
                                         "base; needs a GPU and bitsandbytes)."),
    merge: bool = typer.Option(False, "--merge", help="With --peft: also save the adapter merged into its base; "
                                                      "both are registered as models, with their base."),
    report_to: list[str] = typer.Option([], "--report-to", metavar="TRACKER",
                                        help="Experiment tracker(s): trackio, wandb, mlflow, tensorboard "
                                             "(repeatable; default none)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Print the plan (decision, settings and their sources, launch commands) and "
                                      "write nothing."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Generate a job directory under registry/jobs/ if the decision allows the mode; else exit 1 with reasons.

    Settings come from the preset of the model's size class, then the domain file's training.<mode>, then --set.
    """
    from graduation.errors import InputError
    from graduation.jobs.model import ClusterPin
    from graduation.jobs.presets import parse_overrides
    from graduation.service.jobs import plan_job
    from graduation.jobs.targets import launch_commands

    trackers = {"trackio", "wandb", "mlflow", "tensorboard", "none"}
    bad = [t for t in report_to if t not in trackers]
    if bad:
        raise InputError(f"--report-to {bad[0]!r}: use one of {', '.join(sorted(trackers))}")
    st = state(ctx)
    result = plan_job(st.database(create=False), st.root, domain, mode=mode, target=target, from_job=from_job,
                      name=name, model=model, policy_path=policy_file, model_size=model_size,
                      overrides=parse_overrides(settings), peft=peft, report_to=report_to or None, dry_run=dry_run,
                      merge=merge,
                      cluster=ClusterPin(nodes=nodes, gpus_per_node=gpus_per_node, vllm=vllm, image=image))
    if result.dry_run is not None:
        _print_plan(result.dry_run, as_json)
        return
    job = result.job
    data = {"job": job.id, "path": str(job.path), "mode": job.job.mode, "target": job.job.target,
            "decision_id": job.job.decision.id, "phase": job.job.decision.phase, "files": job.files,
            "train_rows": job.job.datasets["train"].rows}
    if result.crystallised is not None:
        c = result.crystallised
        data["crystallised"] = {"sampled": c.sampled, "kept": c.kept, "seconds": round(c.seconds, 3),
                                "verified_per_second": round(c.verified_per_second, 1)}
    if as_json:
        print_json(data)
        return
    from graduation.cli.output import info

    info(f"[green]generated[/] {job.id} ({job.job.mode}, {job.job.decision.action} allowed in phase "
         f"{job.job.decision.phase}, decision {job.job.decision.id[:12]})")
    if result.crystallised is not None:
        info(f"  crystallised {data['crystallised']['kept']} verified rows from {data['crystallised']['sampled']} "
             f"samples ({data['crystallised']['verified_per_second']} verifications/s)")
    info(f"  {job.path}")
    commands = launch_commands(job.job.target, job.id, job.job.cluster, _shown(st.root, job.path))
    info(f"  launch ({job.job.target}): {commands[0]}")
    for other in commands[1:]:
        info(f"           or: {other}")


def _shown(root: Path, path: Path) -> str:
    try:
        return str(Path(path).relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def _print_plan(plan: dict, as_json: bool) -> None:
    if as_json:
        print_json(plan)
        return
    from rich.markup import escape

    from graduation.cli.output import info, show, table

    verdict = "[green]allowed[/]" if plan["allowed"] else "[red]denied[/]"
    info(f"[bold]dry run[/]: {plan['action']} on {plan['domain']} v{plan['version']} is {verdict} "
         f"(phase {plan['phase']}, decision {plan['decision_id'][:12]}); nothing was written")
    for reason in plan["reasons"]:
        info(f"  - {escape(reason)}")
    size = plan.get("size")
    if size:
        info(f"  model {escape(str(plan['model']))}: size class {size['size_class']} ({size['source']})")
    rows = [(k, str(v), plan["sources"].get(k, "domain")) for k, v in {**plan["hyperparameters"],
                                                                       **plan["runner"]}.items()]
    show(table(None, ["setting", "value", "from"], rows))
    if plan["peft"]:
        info(f"  peft: {plan['peft']}")
    for command in plan["launch"]:
        info(f"  would launch with: {command}")


@command("run", group=jobs_app)
def run_cmd(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., metavar="JOB", help="A generated job.", autocompletion=job_ids),
    check: bool = typer.Option(False, "--check", help="Only re-check the decision (exit 1 if refused)."),
    max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in output/trainer "
                                                        "(set save_strategy/save_steps to write checkpoints)."),
    bundle: Path | None = typer.Option(None, "--bundle", metavar="DIR",
                                       help="Run the job directory at DIR (a copy anywhere; launch.sh passes its "
                                            "own): checked against the seal in the registry, which is --db / "
                                            "REGISTRY_DB_URL, or its project's own when DIR is still in it."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Run a job here (CPU or one GPU), re-checking its sealed files and decision first; every round is recorded
    as evidence.

    Exit 1 when a file changed or the decision no longer allows it, or when GRPO stopped with "no learning signal".
    """
    from graduation.cli.output import StepBar, info
    from graduation.service.launch import run_job

    st = state(ctx)
    if bundle is not None:
        from graduation.service.launch import bundle_registry

        db, root = bundle_registry(bundle, st.db_url)
    else:
        db, root = st.database(create=False), st.root
    outcome = run_job(db, root, job_id, check_only=check, policy_path=policy_file, max_steps=max_steps,
                      progress=not (quiet or as_json), resume=resume, bundle=bundle, say=info,
                      steps=StepBar)
    if as_json:
        print_json(outcome.to_dict())
        return
    if check:
        info(f"[green]ok[/] {job_id}: still allowed (decision {outcome.decision_id[:12]})")
        return
    recorded = [r for r in outcome.rounds if "pass_rate" in r]  # a repeat of an earlier round is not recorded
    first, last = (recorded[0], recorded[-1]) if recorded else (None, None)
    info(f"[green]{outcome.state}[/] {job_id}: {outcome.steps} steps in {outcome.seconds:.1f}s; model {outcome.model_path}")
    if first is not None:
        info(f"  held-out pass rate {first['pass_rate']:.1%} (round {first['round']}) -> {last['pass_rate']:.1%} "
             f"(round {last['round']}); `registry status` shows what it changed")


@command("list", group=jobs_app)
def list_cmd(ctx: typer.Context, domain: str | None = typer.Option(None, "--domain", "-d"),
             as_json: bool = JSON_OPTION,
             wide: bool = typer.Option(False, "--wide", help="Show every column, even when wider than the "
                                       "terminal.")) -> None:
    """List jobs with their state."""
    from graduation.store.jobs import job_dict, list_jobs

    with state(ctx).database(create=False).read() as session:
        rows = [job_dict(r) for r in list_jobs(session, domain)]
    if as_json:
        print_json(rows)
        return
    from graduation.cli.output import info

    if not rows:
        info("no jobs yet; `registry jobs generate DOMAIN`")
        return
    from graduation.cli.output import ID, fit_table, show_wide

    show_wide(fit_table(None, [("job", ID, 0), ("domain", ID, 5), ("mode", ID, 0), ("target", ID, 3),
                               ("state", ID, 0), ("decision", ID, 2), ("updated", ID, 1)],
                        [(r["id"], r["domain"], r["mode"], r["target"], r["state"], (r["decision_id"] or "")[:12],
                          r["updated_at"]) for r in rows], wide=wide), wide)


@command("show", group=jobs_app)
def show_cmd(ctx: typer.Context, job_id: str = typer.Argument(..., metavar="JOB", autocompletion=job_ids),
             as_json: bool = JSON_OPTION) -> None:
    """A job's record: state, decision, rounds with their pass rates, files."""
    from graduation.store.jobs import get_job, job_dict

    with state(ctx).database(create=False).read() as session:
        data = job_dict(get_job(session, job_id))
    if as_json:
        print_json(data)
        return
    from graduation.cli.output import info

    info(f"[bold]{data['id']}[/]  {data['mode']} on {data['domain']} v{data['domain_version']}  state "
         f"[bold]{data['state']}[/]  target {data['target']}")
    info(f"  decision {data['decision_id']}" + (f"  from {data['from_job']}" if data["from_job"] else ""))
    info(f"  {data['path']}")
    detail = data["detail"]
    for r in detail.get("rounds", []):
        if "pass_rate" not in r:
            info(f"  round {r['round']:>2} step {r['step']:>5}: not recorded (same model and outputs as before)")
            continue
        info(f"  round {r['round']:>2} step {r['step']:>5}: {r['passed']}/{r['n']} pass rate {r['pass_rate']:.1%} "
             f"(Wilson lower {r['wilson_lower']:.3f}, shape gap {r['shape_gap']:+.3f})")
    for key in ("crystallised", "error", "refused_reasons"):
        if key in detail:
            info(f"  {key}: {detail[key]}")
