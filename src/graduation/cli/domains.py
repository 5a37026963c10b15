"""Domain commands: init, schema, validate, register, list, show, history."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from graduation.cli.app import EXIT_INPUT, JSON_OPTION, command, print_json, state
from graduation.cli.complete import domain_names

PATHS_ARG = typer.Argument(..., help="Domain files, or directories to search for *.yaml.", show_default=False)


@command("init")
def init_cmd(
    directory: Path = typer.Argument(Path("."), help="Where to create the project."),
    force: bool = typer.Option(False, "--force", help="Overwrite the example files if they exist."),
) -> None:
    """Scaffold a project: domains/, examples/ (an example domain), policies/ (with tests), registry/."""
    from graduation.service.scaffold import scaffold
    from graduation.cli.output import info

    for path, status in scaffold(directory, force=force):
        info(f"{status:>9}  {path}")
    info("\nNext: `registry validate examples/` and `registry policy test policies/tests`; to start a domain, "
         "`cp -r examples/example.yaml examples/data domains/`, edit it, then `registry validate domains/` and "
         "`registry register domains/`.")


@command("schema")
def schema_cmd(
    out: Path | None = typer.Option(None, "--out", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the JSON Schema of domain files (point your editor at it), with every verifier kind's options."""
    from graduation.verifiers.catalog import domain_schema

    text = json.dumps(domain_schema(), indent=2) + "\n"
    if out:
        from graduation.atomicfile import atomic_write_text

        atomic_write_text(out, text)
    else:
        typer.echo(text, nl=False)


@command("validate")
def validate_cmd(
    ctx: typer.Context,
    paths: list[Path] = PATHS_ARG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check domain files without writing anything. Every problem is reported with file:line."""
    from graduation.errors import SpecError
    from graduation.service.project import load_and_check

    warnings: list = []
    try:
        loaded = load_and_check(paths, state(ctx).root, warnings=warnings)
    except SpecError as exc:
        if as_json:
            print_json({"valid": False, "problems": [p.to_dict() for p in exc.problems]})
            raise typer.Exit(EXIT_INPUT) from None
        raise
    _warn(warnings)
    from graduation.service.heldout import heldout_report

    heldout = {d.spec.domain: heldout_report(d.spec, state(ctx).root) for d in loaded}
    if as_json:
        print_json({"valid": True, "warnings": [w.to_dict() for w in warnings], "domains": [
            {"domain": d.spec.domain, "file": d.source_file, "content_hash": d.content_hash,
             "heldout": heldout[d.spec.domain]} for d in loaded]})
        return
    from graduation.cli.output import info

    for d in loaded:
        info(f"[green]ok[/]  {d.source_file}  ({d.spec.domain}, risk {d.spec.risk.value})")
        _heldout_line(heldout[d.spec.domain])


def _heldout_line(report: dict) -> None:
    from graduation.cli.output import info, warn

    if not report["eval_prompts"]:
        return
    if report["overlapping"]:
        warn(f"held-out: {report['message']}; e.g. {', '.join(report['examples'][:3])}")
    else:
        info(f"    held-out: {report['message']}")


@command("register")
def register_cmd(
    ctx: typer.Context,
    paths: list[Path] = PATHS_ARG,
    as_json: bool = JSON_OPTION,
) -> None:
    """Record domain files in the registry: unchanged content is a no-op, changed content a new version.

    All files are validated first; if any is broken, nothing is written.
    """
    from graduation.service.project import load_and_check
    from graduation.store.domains import register

    st = state(ctx)
    warnings: list = []
    loaded = load_and_check(paths, st.root, warnings=warnings)
    _warn(warnings)
    from graduation.service.heldout import heldout_report

    heldout = {d.spec.domain: heldout_report(d.spec, st.root) for d in loaded}
    results = st.database().transact(lambda session: [register(session, item) for item in loaded])
    if as_json:
        print_json({"registered": [{**r.to_dict(), "heldout": heldout.get(r.domain)} for r in results]})
        return
    from graduation.cli.output import info, show, table

    show(table(None, ["domain", "version", "status", "file"],
               [(r.domain, r.version, r.status, r.source_file) for r in results]))
    for report in heldout.values():
        if report["overlapping"]:
            _heldout_line(report)
    changed = sum(r.status != "unchanged" for r in results)
    info(f"{changed} changed, {len(results) - changed} unchanged" if changed else "no changes")


@command("list")
def list_cmd(ctx: typer.Context, as_json: bool = JSON_OPTION,
             wide: bool = typer.Option(False, "--wide", help="Show every column, even when wider than the "
                                       "terminal.")) -> None:
    """List the registered domains with their newest version."""
    from graduation.records import iso
    from graduation.store.domains import list_domains

    with state(ctx).database().read() as session:
        rows = list_domains(session)
    data = [{"domain": r.name, "version": r.latest_version, "risk": r.risk, "title": r.title,
             "updated_at": iso(r.updated_at)} for r in rows]
    if as_json:
        print_json(data)
        return
    from graduation.cli.output import ID, NUM, TEXT, fit_table, info, show_wide

    if not data:
        info("no domains registered yet; run `registry register domains/`")
        return
    show_wide(fit_table(None, [("domain", ID, 0), ("version", NUM, 0), ("risk", ID, 3), ("title", TEXT, 2),
                               ("updated", ID, 1)],
                        [(d["domain"], d["version"], d["risk"], d["title"], d["updated_at"]) for d in data],
                        wide=wide), wide)


@command("show")
def show_cmd(
    ctx: typer.Context,
    domain: str = typer.Argument(..., metavar="DOMAIN", help="Domain name.", autocompletion=domain_names),
    version: int | None = typer.Option(None, "--version", "-v", min=1, max=2**31 - 1,
                                       help="A stored version (default newest)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Show a registered domain version: its spec, hashes and source file."""
    from graduation.records import iso
    from graduation.store.domains import get_version

    with state(ctx).database().read() as session:
        row = get_version(session, domain, version)
    data = {"domain": row.domain, "version": row.version, "risk": row.risk, "content_hash": row.content_hash,
            "basis_hash": row.basis_hash, "source_file": row.source_file, "registered_at": iso(row.created_at),
            "files": json.loads(row.data_hashes_json), "spec": json.loads(row.spec_json)}
    if as_json:
        print_json(data)
        return
    import yaml

    from graduation.cli.output import info, show, table

    show(table(f"{row.domain} v{row.version}", ["field", "value"], [
        ("risk", row.risk), ("content hash", row.content_hash[:16]), ("evidence basis", row.basis_hash[:16]),
        ("source", row.source_file), ("registered", data["registered_at"])]))
    info(yaml.safe_dump(data["spec"], sort_keys=False, allow_unicode=True).rstrip())


@command("history")
def history_cmd(
    ctx: typer.Context,
    domain: str = typer.Argument(..., metavar="DOMAIN", help="Domain name.", autocompletion=domain_names),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every stored version of a domain, oldest first."""
    from graduation.records import iso
    from graduation.store.domains import history

    with state(ctx).database().read() as session:
        rows = history(session, domain)
    data = [{"version": r.version, "content_hash": r.content_hash, "basis_hash": r.basis_hash,
             "risk": r.risk, "source_file": r.source_file, "registered_at": iso(r.created_at)} for r in rows]
    if as_json:
        print_json({"domain": domain, "versions": data})
        return
    from graduation.cli.output import show, table

    show(table(f"history of {domain}", ["version", "registered", "risk", "content hash", "evidence basis"],
               [(d["version"], d["registered_at"], d["risk"], d["content_hash"][:16], d["basis_hash"][:16])
                for d in data]))


def _warn(warnings: list) -> None:
    if warnings:
        from graduation.cli.output import warn

        for w in warnings:
            warn(w.render())
