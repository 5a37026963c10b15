"""The typer application, its global options, and the conventions every command follows.

Commands are thin: parse options, call the library, render the result, exit with its code.
Exit codes: 0 success/allowed, 1 denied or a failed check, 2 usage or input error.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import typer

from graduation.errors import GraduationError

EXIT_OK, EXIT_DENIED, EXIT_INPUT = 0, 1, 2

app = typer.Typer(
    name="registry",
    help="graduation: declare domains, gather verified evidence, and decide what training and deployment "
         "each domain has earned.\n\nExit codes: 0 ok/allowed, 1 denied or check failed, 2 input error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


@dataclass
class State:
    """What the global options select: the project and the database."""

    project: Path | None = None
    db_url: str | None = None
    _db: Any = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        from graduation.project import find_project_root

        if self.project is None:
            self.project = find_project_root()
        return self.project

    def database(self, create: bool = True):
        """Open (and migrate) the registry database once per command."""
        if self._db is None:
            from graduation.audit import anchor_path
            from graduation.store import Database, resolve_url

            url = resolve_url(self.db_url, self.root)
            self._db = Database(url, create=create, anchor=anchor_path(self.root, url))
        return self._db


@app.callback()
def _global(
    ctx: typer.Context,
    db: str | None = typer.Option(None, "--db", metavar="URL", envvar="REGISTRY_DB_URL",
                                  help="SQLAlchemy URL of the registry (default: sqlite at registry/registry.db)."),
    project: Path | None = typer.Option(None, "--project", "-C", metavar="DIR", envvar="GRADUATION_PROJECT",
                                        help="Project root (default: the nearest directory with domains/)."),
) -> None:
    ctx.obj = State(project=project.resolve() if project else None, db_url=db)


def state(ctx: typer.Context) -> State:
    if not isinstance(ctx.obj, State):
        ctx.obj = State()
    return ctx.obj


def handle_errors(fn: Callable) -> Callable:
    """Turn our errors into one clear message on stderr and an exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GraduationError as exc:
            from graduation.cli.output import error

            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            from graduation.cli.output import error

            error("interrupted; nothing partial was written")
            raise typer.Exit(130) from None
        finally:
            _close_database(kwargs.get("ctx"))

    return wrapper


def _close_database(ctx: typer.Context | None) -> None:
    """Dispose the command's engine when it ends, so no connection outlives the command."""
    obj = getattr(ctx, "obj", None)
    if isinstance(obj, State) and obj._db is not None:
        obj._db.dispose()
        obj._db = None


def command(name: str | None = None, group: typer.Typer | None = None, **kwargs) -> Callable:
    """Register a command with error handling: ``@command("list")``."""

    def decorate(fn: Callable) -> Callable:
        (group or app).command(name, **kwargs)(handle_errors(fn))
        return fn

    return decorate


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
POLICY_OPTION = typer.Option(None, "--policy", "-p", metavar="FILE",
                             help="Policy file (default: policies/default.yaml, else the packaged default).")
