"""`registry report`: write the static HTML report of every domain."""

from __future__ import annotations

from pathlib import Path

import typer

from graduation.cli.app import JSON_OPTION, command, print_json, state


@command("report")
def report_cmd(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR",
                                    help="Where to write the report (default: registry/reports/ in the project)."),
    policy: Path | None = typer.Option(None, "--policy", metavar="FILE",
                                       help="Policy file (default: policies/default.yaml, else the packaged one)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a static HTML report: every domain's phase, allowed actions, evidence charts, jobs and audit.

    The pages need no network and no JavaScript; open index.html in any browser.
    """
    from graduation.report.build import write_report

    st = state(ctx)
    result = write_report(st.database(create=False), st.root, out.resolve() if out else None, policy_path=policy)
    if as_json:
        print_json(result.to_dict())
        return
    from graduation.cli.output import info

    phases = ", ".join(f"{n} {p}" for p, n in sorted(result.summary["phases"].items())) or "no domains"
    info(f"report of {result.summary['domains']} domains ({phases}): {len(result.pages)} pages")
    info(f"open {result.index}")
