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
    """A table; a column whose cells hold no spaces (identifiers, hashes, time stamps) never wraps mid-token."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    t = Table(title=title, title_justify="left", expand=False, **kwargs)
    for i, column in enumerate(columns):
        cells = [row[i] for row in rows if i < len(row)]
        if cells and not any(any(ch.isspace() for ch in c) for c in cells) and max(map(len, cells)) <= 40:
            t.add_column(column, no_wrap=True, min_width=max(len(column), *map(len, cells)))
        else:
            t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*[escape(v) for v in row])
    return t


def show(renderable: Any) -> None:
    console.print(renderable)


# -- tables that fit the terminal ------------------------------------------------------------------------

ID, TEXT, NUM = "id", "text", "num"
_BORDERS = 4  # rich's box: one border plus one space of padding on each side of a column, roughly


def fit_table(title: str | None, columns: list[tuple[str, str, int]], rows: Iterable[Iterable[Any]], *,
              wide: bool = False, width: int | None = None) -> Table:
    """A table whose identifiers, hashes and time stamps never wrap mid-token.

    ``columns``: (header, kind, priority). ``id`` and ``num`` cells are kept whole on one line; ``text``
    cells wrap between words (a word longer than the column ends in an ellipsis). When the table does not fit
    the terminal, columns are dropped, the lowest ``priority`` first (priority 0 is never dropped), and the
    caption says which and that ``--wide`` shows them. ``wide=True`` keeps every column.
    """
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    width = width or console.width
    natural = [max([len(h)] + [max((len(x) for x in row[i].splitlines()), default=0) for row in rows])
               for i, (h, _k, _p) in enumerate(columns)]
    longest_word = [max([len(h)] + [len(w) for row in rows for w in row[i].split()])
                    for i, (h, _k, _p) in enumerate(columns)]
    need = [n if kind != TEXT else min(n, max(16, longest_word[i]))
            for i, (n, (h, kind, _p)) in enumerate(zip(natural, columns))]
    if wide:
        need = list(natural)  # every cell on one line: a pager or a wide terminal shows the rest
    keep = list(range(len(columns)))
    dropped: list[str] = []
    if not wide:
        for i in sorted(keep, key=lambda i: columns[i][2]):
            if sum(need[j] + 3 for j in keep) + 1 <= width:
                break
            if columns[i][2] > 0:
                keep.remove(i)
                dropped.append(columns[i][0])
    caption = f"not shown: {', '.join(dropped)} (--wide shows every column)" if dropped else None
    t = Table(title=title, title_justify="left", expand=False, caption=caption, caption_justify="left")
    for i in keep:
        header, kind, _p = columns[i]
        if kind == TEXT:
            t.add_column(header, overflow="ellipsis", min_width=need[i])
        else:
            t.add_column(header, no_wrap=True, min_width=need[i], overflow="ellipsis",
                         justify="right" if kind == NUM else "left")
    for row in rows:
        t.add_row(*[escape(row[i]) for i in keep])
    return t


def show_wide(renderable: Any, wide: bool) -> None:
    """Print; with ``--wide`` at the table's natural width even when the terminal is narrower."""
    if wide:
        measured = console.measure(renderable, options=console.options.update_width(10_000)).maximum
        console.print(renderable, width=max(console.width, measured), crop=False)
    else:
        console.print(renderable)


WIDE_HELP = "Show every column, even when the table is wider than the terminal."


class StepBar:
    """A rich progress bar over a training run's optimizer steps, on stderr (``training.runner.RunSpec.progress``)."""

    def __init__(self, mode: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.mode = mode
        self._bar = None
        self._task = None

    def start(self, total: int) -> None:
        if not self.enabled or self._bar is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn(f"[bold]{self.mode}[/]"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[metric]}"), TimeElapsedColumn(),
                             console=Console(stderr=True), transient=False)
        self._task = self._bar.add_task(self.mode, total=total, metric="")
        self._bar.start()

    def advance(self, step: int, metric: float | None) -> None:
        if self._bar is not None:
            label = "reward" if self.mode == "grpo" else "loss"
            self._bar.update(self._task, completed=step, metric="" if metric is None else f"{label} {metric:.3f}")

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
