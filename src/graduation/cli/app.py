"""The typer application, its global options, and the conventions every command follows.

Commands are thin: parse options, call the library, render the result, exit with its code.
Exit codes: 0 success/allowed, 1 denied or a failed check, 2 usage or input error.
"""

from __future__ import annotations

import functools
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import typer

from graduation.errors import GraduationError

EXIT_OK, EXIT_DENIED, EXIT_INPUT = 0, 1, 2

def _flags_without_placeholders() -> None:
    """Help lists a flag as ``--json``, not ``--json <bool>``: a flag takes no value, so it shows no type."""
    from typer.core import TyperOption

    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "flag_aware", False):
        return  # a typer without type placeholders, or already done

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False) or getattr(self, "count", False):
            return None
        return original(self, ctx)

    display_type_rich.flag_aware = True
    TyperOption.display_type_rich = display_type_rich


_flags_without_placeholders()

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
    exit_code: int = 0  # the code decided so far (kept when the output's reader goes away early)

    @property
    def root(self) -> Path:
        """The project root; outside any project an error that says how one is found (unless ``--db`` names
        the registry, when the current directory stands in as before)."""
        import os

        from graduation.service.root import find_project_root, require_project_root

        if self.project is None:
            explicit_db = self.db_url or os.environ.get("REGISTRY_DB_URL")
            self.project = find_project_root() if explicit_db else require_project_root()
        return self.project

    @property
    def root_or_cwd(self) -> Path:
        """The project root when there is one, else the current directory (commands given explicit files)."""
        from graduation.service.root import find_project_root

        return self.project if self.project is not None else find_project_root()

    def database(self, create: bool = True):
        """Open (and migrate) the registry database once per command."""
        if self._db is None:
            from graduation.store.auditlog import anchor_path
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
                                        help="Project root (default: the nearest directory, from here up, "
                                             "holding domains/, policies/ or registry/)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=lambda v: _print_version(v),
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = State(project=project.resolve() if project else None, db_url=db)


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("graduation")
    except PackageNotFoundError:
        found = "unknown (not installed as a package)"
    typer.echo(f"registry (graduation) {found}")
    raise typer.Exit(EXIT_OK)


@contextmanager
def open_registry(st: State):
    """The registry, closed when the command is done with it (so SQLite checkpoints its WAL then)."""
    db = st.database(create=False)
    try:
        yield db
    finally:
        db.dispose()


def state(ctx: typer.Context) -> State:
    if not isinstance(ctx.obj, State):
        ctx.obj = State()
    return ctx.obj


def handle_errors(fn: Callable) -> Callable:
    """Turn our errors into one clear message on stderr and an exit code; never a traceback.

    With ``--json`` the error is also a JSON object on stdout (``error_document``). A reader that stops
    early (``registry status | head -1``) is not an error: the rest of the output is dropped quietly and the
    command exits with the code it had decided (0 unless, say, a required action was denied).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GraduationError as exc:
            from graduation.cli.output import error

            error(str(exc))
            if kwargs.get("as_json") or kwargs.get("fmt") in ("json", "sarif"):
                print_json(error_document(exc, exc.exit_code))
            raise typer.Exit(exc.exit_code) from None
        except BrokenPipeError:
            quiet_stdout()
            obj = getattr(kwargs.get("ctx"), "obj", None)
            raise typer.Exit(getattr(obj, "exit_code", EXIT_OK)) from None
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


SCHEMA_VERSION = 1  # of every JSON object the commands print; bumped when a field changes meaning or goes


def print_json(data: Any) -> None:
    """Print a command's JSON; an object carries ``schema_version`` first."""
    if isinstance(data, dict) and "schema_version" not in data:
        data = {"schema_version": SCHEMA_VERSION, **data}
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n")


def error_document(exc: BaseException | str, exit_code: int) -> dict[str, Any]:
    """An error as data: ``{schema_version, ok: false, exit_code, error: {type, message, problems}}``."""
    problems = [p.to_dict() for p in getattr(exc, "problems", [])]
    return {"schema_version": SCHEMA_VERSION, "ok": False, "exit_code": exit_code,
            "error": {"type": type(exc).__name__ if not isinstance(exc, str) else "UsageError",
                      "message": str(exc), "problems": problems}}


def quiet_stdout() -> None:
    """stdout's reader went away: send whatever is still buffered, and all later output, nowhere."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
POLICY_OPTION = typer.Option(None, "--policy", "-p", metavar="FILE",
                             help="Policy file (default: policies/default.yaml, else the packaged default).")
