"""Model commands: `models register|list|show`: artifacts by digest, with their lineage."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

from graduation.cli.app import JSON_OPTION, app, command, print_json, state
from graduation.errors import InputError

models_app = typer.Typer(help="Model artifacts: registered by digest; rounds and deployments belong to them.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@contextmanager
def hashing_progress(label: str, quiet: bool) -> Iterator:
    """A byte progress bar on stderr while a model directory is hashed (nothing with --json)."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from graduation.cli.output import err_console

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def digest_of_dir(path: Path, quiet: bool):
    from graduation.models import manifest

    with hashing_progress(f"hashing {path}", quiet) as progress:
        return manifest(path, progress)


@command("register", group=models_app)
def models_register_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model's name (a new version is made when its content changes).",
                               show_default=False),
    path: Path | None = typer.Option(None, "--path", help="The model directory: weights, configs, tokenizer files."),
    digest: str | None = typer.Option(None, "--digest", help="sha256:HEX of an artifact kept elsewhere (object "
                                      "store, OCI image, hub revision)."),
    base_model: str | None = typer.Option(None, "--base-model", help="Lineage: the model it was trained from."),
    job: str | None = typer.Option(None, "--job", help="Lineage: the job that trained it."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a model artifact by the digest of its files (or a digest given). Same content: a no-op."""
    from graduation.models import check_digest, check_name
    from graduation.store.models import register_model

    check_name(name)
    if (path is None) == (digest is None):
        raise InputError("give exactly one of --path DIR (hash the files here) or --digest sha256:HEX")
    lineage = {k: v for k, v in {"base_model": base_model, "job": job}.items() if v}
    if path is not None:
        found = digest_of_dir(path, as_json)
        value, kind, where = found.digest, "manifest", str(path.resolve())
        lineage["files"] = len(found.files)
        lineage["bytes"] = found.size
    else:
        value, kind, where = check_digest(digest or ""), "external", None
    st = state(ctx)
    info, created = st.database().transact(
        lambda s: register_model(s, name, digest=value, kind=kind, path=where, lineage=lineage))
    if as_json:
        print_json({"created": created, **info.to_dict()})
        return
    from graduation.cli.output import info as say

    if created:
        say(f"registered {info.ref} ({info.digest})")
    else:
        say(f"already registered as {info.ref} ({info.digest}); nothing written")


@command("list", group=models_app)
def models_list_cmd(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Every registered model version."""
    from graduation.store.models import list_models

    with state(ctx).database().read() as session:
        found = list_models(session)
    if as_json:
        print_json({"models": [m.to_dict() for m in found]})
        return
    from graduation.cli.output import info, show, table

    if not found:
        info("no models registered yet; `registry models register NAME --path DIR`")
        return
    show(table("models", ["model", "digest", "kind", "base model", "job"],
               [(m.ref, (m.digest or "-")[:19], m.digest_kind if "kind" not in m.lineage else m.lineage["kind"],
                 (m.lineage.get("base") or {}).get("model") or m.lineage.get("base_model", "-"),
                 m.lineage.get("job", "-")) for m in found]))


@command("show", group=models_app)
def models_show_cmd(ctx: typer.Context, model: str = typer.Argument(..., help="NAME, NAME@V or sha256:HEX.",
                                                                     show_default=False),
                    as_json: bool = JSON_OPTION) -> None:
    """A model version: digest, lineage (base model, job, datasets, decision, policy) and its rounds."""
    from graduation.store.models import resolve_model
    from graduation.store.tables import EvidenceRow
    from sqlmodel import select

    with state(ctx).database().read() as session:
        info = resolve_model(session, model)
        rows = session.exec(select(EvidenceRow).where(EvidenceRow.model_id == info.id)
                            .order_by(EvidenceRow.id)).all()
        rounds = [{"domain": r.domain, "domain_version": r.domain_version, "kind": r.kind, "round": r.round,
                   "passed": json.loads(r.summary_json).get("passed"), "n": json.loads(r.summary_json).get("n"),
                   "origin": json.loads(r.summary_json).get("origin", "submitted")}
                  for r in rows if r.kind in ("eval", "training_round")]
    if as_json:
        print_json({**info.to_dict(), "rounds": rounds})
        return
    from graduation.cli.output import show, table

    show(table(f"model {info.ref}", ["field", "value"],
               [("digest", info.digest or "unknown (unverified)"), ("digest kind", info.digest_kind),
                ("path", info.path or "-")]
               + ([("artifact", info.lineage["kind"]),
                   ("base", f"{info.lineage['base'].get('model') or info.lineage['base'].get('name')} "
                            f"({info.lineage['base'].get('digest') or 'digest unknown'})")]
                  if isinstance(info.lineage.get("base"), dict) else []) + [(f"lineage: {k}", json.dumps(v) if not isinstance(v, str) else v)
                                                for k, v in sorted(info.lineage.items())]))
    if rounds:
        show(table("rounds", ["domain", "round", "kind", "passed", "origin"],
                   [(r["domain"], r["round"], r["kind"], f"{r['passed']}/{r['n']}", r["origin"]) for r in rounds]))
