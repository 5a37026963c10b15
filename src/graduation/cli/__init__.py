"""The ``registry`` command line. Each module registers the commands of one area on ``app``.

Command modules import the service inside each command, on purpose: every command module is loaded at
start-up, so `registry --help`, shell completion and `registry list` load only what they use
(``benchmarks/cli_startup.py``). Below the CLI, imports sit at module top (``ARCHITECTURE.md``).
"""

from graduation.cli.app import app
from graduation.cli import domains  # noqa: F401  (registers commands)
from graduation.cli import policy  # noqa: F401  (registers commands)
from graduation.cli import audit  # noqa: F401  (registers commands)
from graduation.cli import evidence  # noqa: F401  (registers commands)
from graduation.cli import records  # noqa: F401  (registers commands)
from graduation.cli import report  # noqa: F401  (registers commands)
from graduation.cli import jobs  # noqa: F401  (registers commands)
from graduation.cli import models  # noqa: F401  (registers commands)


def main() -> None:
    """The console script: the typer app, with ``--json`` usage errors as JSON and a closed pipe not an error."""
    import gc
    import sys

    import typer

    click_error = typer.BadParameter.__mro__[2]  # ClickException, wherever this typer keeps click
    abort = typer.Abort
    try:
        if "--json" in sys.argv[1:]:
            try:
                code = app(standalone_mode=False)
            except click_error as exc:
                from graduation.cli.app import error_document, print_json

                exc.show()
                print_json(error_document(exc.format_message(), exc.exit_code))
                code = exc.exit_code
            except abort:
                code = 130
            code = code if isinstance(code, int) else 0
        else:
            app()
            code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        from graduation.cli.app import quiet_stdout

        quiet_stdout()
    # The process ends here: its memory goes back whole. Without this, the interpreter's last collection walks
    # every object the imported libraries made: benchmarks/cli_startup.py timed `registry list --json` at
    # 624-646 ms without it, 525-561 ms with it. Frozen objects are skipped by that collection; finalizers and
    # atexit handlers still run, and files are closed.
    gc.freeze()
    sys.exit(code)


__all__ = ["app", "main"]
