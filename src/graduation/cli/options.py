"""Options and helpers shared by the commands that verify rows: the domain argument, pool settings, a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer

from graduation.cli.complete import domain_names

DOMAIN_ARG = typer.Argument(..., help="Domain name.", show_default=False, autocompletion=domain_names)
TIMEOUT_OPTION = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per verified item before it is an error.")
WORKERS_OPTION = typer.Option(None, "--workers", min=1, help="Isolated worker processes (default: CPU count).")
NO_CACHE_OPTION = typer.Option(False, "--no-cache", help="Verify again instead of reading cached verdicts.")
ENGINE_OPTION = typer.Option("local", "--engine", help="Where rows are verified: local (this machine) or ray "
                             "(a Ray cluster; JSONL or Parquet; needs graduation[ray]). Same record either way. "
                             "evaluate --generate: local (transformers) or vllm samples the artifact.")
ADDRESS_OPTION = typer.Option(None, "--address", help="With --engine ray: auto (the cluster this machine is "
                              "part of) or ray://HOST:PORT; default: a local Ray started for this run.")
ROWS_OPTION = typer.Option(None, "--rows", metavar="FILE", help="Also write one JSON line per item: line, id, "
                           "each verifier's verdict and explanation, flagged symbols.")
UNSANDBOXED_OPTION = typer.Option(False, "--unsandboxed", help="Run python/command verifiers without the "
                                  "bubblewrap sandbox (scrubbed environment only); the evidence records it.")



@contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress display on stderr (rows verified so far); nothing with --json, nor when stderr is not a
    terminal (a log file gets no bar frames). It is transient and ends before any result is printed; a
    warning printed meanwhile goes through the same console, above the bar."""
    from graduation.cli.output import err_console

    if quiet or not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,} rows"), TimeElapsedColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)


def verifier_pool(workers: int | None, timeout: float, unsandboxed: bool = False):
    from graduation.verifiers.pool import VerifierPool

    return VerifierPool(workers, timeout=timeout, sandbox="unsandboxed" if unsandboxed else "bwrap")
