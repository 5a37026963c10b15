"""Model commands: `models register|list|show`: artifacts by digest, with their lineage."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import typer

from graduation.cli.app import JSON_OPTION, app, command, print_json, state
from graduation.cli.complete import model_names
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
    adapter_of: str | None = typer.Option(None, "--adapter-of", metavar="NAME[@V]|sha256:HEX",
                                          autocompletion=model_names,
                                          help="DIR holds a LoRA adapter (peft) of this registered model: "
                                               "`evaluate --generate` applies it to that base, whose files must "
                                               "still hash to its digest."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register a model artifact by the digest of its files (or a digest given). Same content: a no-op."""
    from graduation.models import check_digest, check_name
    from graduation.store.models import register_model, resolve_model

    check_name(name)
    if (path is None) == (digest is None):
        raise InputError("give exactly one of --path DIR (hash the files here) or --digest sha256:HEX")
    lineage: dict = {k: v for k, v in {"base_model": base_model, "job": job}.items() if v}
    is_adapter = path is not None and (path / "adapter_config.json").is_file()
    if adapter_of is not None:
        if not is_adapter:
            raise InputError(f"--adapter-of: {path or '--digest'} holds no adapter_config.json; it names the base "
                             "of a LoRA adapter directory given with --path")
        with state(ctx).database().read() as session:
            base = resolve_model(session, adapter_of)
        lineage.update(kind="adapter", base={"model": base.ref, "digest": base.digest, "name": base.name})
        lineage.setdefault("base_model", base.ref)
    elif is_adapter:
        # an adapter is half an artifact: what it answers depends on the base, so the base is part of its record
        raise InputError(f"{path} holds a LoRA adapter (adapter_config.json): name the registered model it was "
                         "trained on with --adapter-of NAME[@V]|sha256:HEX (register that base first), or register "
                         "the merged model instead")
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
    if not created and "base" in lineage and info.lineage.get("base") != lineage["base"]:
        # one artifact, one registration: the record written first stands (nothing was written now)
        raise InputError(f"these files are registered already as {info.ref}, with base "
                         f"{(info.lineage.get('base') or {}).get('model') or 'none'}, not {lineage['base']['model']}: "
                         "an adapter keeps the base it was first registered with")
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
