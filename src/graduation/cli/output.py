"""Rich rendering helpers shared by the commands. Imported only when something is printed."""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


def table(title: str | None, columns: list[str], rows: Iterable[Iterable[Any]], **kwargs) -> Table:
    t = Table(title=title, title_justify="left", expand=False, **kwargs)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*[escape("" if v is None else str(v)) for v in row])
    return t


def show(renderable: Any) -> None:
    console.print(renderable)
