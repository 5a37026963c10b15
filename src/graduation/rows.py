"""Streaming readers for data rows: JSONL, JSON (an array of objects), CSV and Parquet.

    report = ReadReport("data/train.jsonl")
    for line, row in iter_rows(path, report):   # line: 1-based line (JSONL/JSON/CSV) or row number (Parquet)
        ...
    report.raise_if_any()                        # DataError listing every malformed row with file:line

Memory stays flat: JSONL and CSV are read line by line, JSON arrays object by object with an incremental
decoder, Parquet in record batches. A malformed row is never skipped silently: it is recorded in the report
(which the caller turns into an error before writing anything), or raised at once without a report.
Text is decoded as UTF-8 with ``surrogateescape``, so a row whose output holds invalid UTF-8 still reads and
its verifier answers ``error`` for that output alone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.errors import DataError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
           ".pq": "parquet"}
MAX_REPORTED = 20


@dataclass
class ReadReport:
    """Malformed rows found while reading one file."""

    file: str
    problems: list[tuple[int, str]] = field(default_factory=list)
    count: int = 0

    def add(self, line: int, message: str) -> None:
        self.count += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append((line, message))

    def raise_if_any(self) -> None:
        if not self.count:
            return
        lines = [f"{self.file}:{line}: {message}" for line, message in self.problems]
        more = f"\n... and {self.count - len(self.problems)} more" if self.count > len(self.problems) else ""
        raise DataError(f"{self.count} malformed row(s); fix or remove them (nothing was written):\n"
                        + "\n".join(lines) + more)


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise DataError(f"unknown data format {fmt!r}; use one of jsonl, json, csv, parquet")
        return fmt
    found = FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise DataError(f"{path}: cannot tell the format from the suffix {Path(path).suffix!r}; "
                        "use .jsonl, .json, .csv or .parquet")
    return found


def iter_rows(path: Path | str, report: ReadReport | None = None, *, fmt: str | None = None,
              display: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line, row)`` for every well-formed row. Without a report, the first bad row raises."""
    path = Path(path)
    name = display or str(path)
    if not path.is_file():
        raise DataError(f"{name}: no such file" if not path.exists() else f"{name}: not a file")
    kind = detect_format(path, fmt)
    own = report is None
    report = report if report is not None else ReadReport(name)
    reader = {"jsonl": _jsonl, "json": _json, "csv": _csv, "parquet": _parquet}[kind]
    for line, row in reader(path, report):
        if own and report.count:
            report.raise_if_any()
        yield line, row
    if own:
        report.raise_if_any()


def read_rows(path: Path | str, *, fmt: str | None = None, display: str | None = None) -> list[dict[str, Any]]:
    """All rows of a (small) file; raises ``DataError`` listing every malformed row."""
    report = ReadReport(display or str(path))
    rows = [row for _, row in iter_rows(path, report, fmt=fmt, display=display)]
    report.raise_if_any()
    return rows


def _object_or_problem(value: Any, line: int, report: ReadReport) -> dict | None:
    if isinstance(value, dict):
        return value
    report.add(line, f"expected a JSON object, got {type(value).__name__} {_short(value)}")
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


PIECE_BYTES = 1 << 20
FAST_MIN_BYTES = 64 << 10
_ARROW_SIMPLE = ("string", "large_string", "int64", "double", "bool")
_BLANKISH = (b"\n\n", b"\n\r", b"\n ", b"\n\t")  # a blank line, or one that starts with white space


def _jsonl(path: Path, report: ReadReport) -> Iterator[tuple[int, dict]]:
    yield from iter_jsonl_range(path, report)


def split_ranges(path: Path | str, parts: int) -> list[tuple[int, int, int]]:
    """Cut a JSONL file into ``parts`` byte ranges on line boundaries: (start, end, first line number)."""
    path = Path(path)
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as fh:
        for k in range(1, parts):
            fh.seek(max(cuts[-1], size * k // parts))
            fh.readline()
            cuts.append(min(fh.tell(), size))
    cuts.append(size)
    cuts = sorted(set(cuts))
    ranges, line = [], 1
    with path.open("rb") as fh:
        for a, b in zip(cuts, cuts[1:]):
            ranges.append((a, b, line))
            fh.seek(a)
            remaining = b - a
            while remaining > 0:
                block = fh.read(min(PIECE_BYTES, remaining))
                remaining -= len(block)
                line += block.count(b"\n")
    return ranges


def iter_jsonl_range(path: Path, report: ReadReport, start: int = 0, end: int | None = None,
                     first_line: int = 1) -> Iterator[tuple[int, dict]]:
    """Rows of a JSONL file (or of the byte range [start, end) that begins at ``first_line``).

    The file is read in pieces of a few MB cut at line ends. A piece with no blank line is handed to pyarrow's
    JSON reader, several times faster than ``json.loads`` per line; a piece that pyarrow refuses, or would
    read differently from the standard library (missing or null fields, types it reinterprets, invalid
    UTF-8), is read line by line, so that every problem is reported with its line number.
    """
    end = path.stat().st_size if end is None else end
    line = first_line
    with path.open("rb") as fh:
        fh.seek(start)
        position, rest = start, b""
        while position < end or rest:
            block = fh.read(min(PIECE_BYTES, end - position)) if position < end else b""
            position += len(block)
            data = rest + block
            if position < end:
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # one line longer than a piece: keep reading
                    rest = data
                    continue
                piece, rest = data[:cut], data[cut:]
            else:
                piece, rest = data, b""
            del data, block
            rows = _arrow_rows(piece) if len(piece) >= FAST_MIN_BYTES else None
            if rows is not None:
                for offset, row in enumerate(rows):
                    yield line + offset, row
            else:
                yield from _lines(piece, line, report)
            rows = None
            line += piece.count(b"\n")


def _arrow_rows(piece: bytes) -> list[dict] | None:
    if piece[:1] in b"\n\r\t " or any(mark in piece for mark in _BLANKISH):
        return None
    try:
        import pyarrow as pa
        import pyarrow.json as pj

        table = pj.read_json(pa.BufferReader(piece), read_options=pj.ReadOptions(use_threads=False,
                                                                                 block_size=len(piece) + 1),
                             memory_pool=pa.system_memory_pool())
    except Exception:  # malformed rows, invalid UTF-8, ...: the line reader names them
        return None
    if not all(_simple_type(field.type) for field in table.schema):
        return None
    if any(column.null_count for column in table.columns):
        return None
    try:
        return table.to_pylist()
    except UnicodeDecodeError:  # pyarrow does not check UTF-8 until it makes Python strings
        return None


def _simple_type(arrow_type) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return False  # nested objects: pyarrow would fill missing keys with nulls
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _simple_type(arrow_type.value_type)
    return str(arrow_type) in _ARROW_SIMPLE


def _lines(piece: bytes, first_line: int, report: ReadReport) -> Iterator[tuple[int, dict]]:
    loads = json.loads
    for number, raw in enumerate(piece.split(b"\n"), first_line):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogateescape")
        if not text.strip():
            continue
        try:
            value = loads(text)
        except RecursionError:
            report.add(number, "JSON nested too deeply")
            continue
        except ValueError as exc:
            report.add(number, f"not valid JSON ({exc.msg} at column {exc.colno})"
                       if isinstance(exc, json.JSONDecodeError) else f"not valid JSON ({exc})")
            continue
        if type(value) is dict:
            yield number, value
        else:
            _object_or_problem(value, number, report)


def _json(path: Path, report: ReadReport, chunk: int = 1 << 20) -> Iterator[tuple[int, dict]]:
    """A top-level array of objects, decoded one element at a time (``{"rows": [...]}`` is read whole)."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8", errors="surrogateescape") as fh:
        state = {"buf": fh.read(chunk), "pos": 0, "line": 1}
        state["eof"] = len(state["buf"]) < chunk

        def refill() -> bool:
            if state["eof"]:
                return False
            more = fh.read(chunk)
            state["eof"] = len(more) < chunk
            state["buf"] = state["buf"][state["pos"]:] + more
            state["pos"] = 0
            return bool(more)

        def advance(to: int) -> None:
            state["line"] += state["buf"].count("\n", state["pos"], to)
            state["pos"] = to

        def skip_ws() -> str | None:
            while True:
                buf, pos = state["buf"], state["pos"]
                end = pos
                while end < len(buf) and buf[end] in " \t\r\n":
                    end += 1
                advance(end)
                if end < len(buf):
                    return buf[end]
                if not refill():
                    return None

        first = skip_ws()
        if first != "[":
            rest = state["buf"][state["pos"]:] + fh.read()
            try:
                value = json.loads(rest)
            except RecursionError:
                report.add(state["line"], "JSON nested too deeply")
                return
            except ValueError as exc:
                report.add(state["line"] + getattr(exc, "lineno", 1) - 1, f"not valid JSON ({getattr(exc, 'msg', exc)})")
                return
            rows = value.get("rows") if isinstance(value, dict) else None
            if not isinstance(rows, list):
                report.add(state["line"], 'a JSON data file must hold an array of objects (or {"rows": [...]})')
                return
            for number, item in enumerate(rows, 1):
                obj = _object_or_problem(item, number, report)
                if obj is not None:
                    yield number, obj
            return
        advance(state["pos"] + 1)
        expect_value, started = True, False
        while True:
            char = skip_ws()
            if char is None:
                report.add(state["line"], "the JSON array is not closed (missing ']')")
                return
            if char == "]":
                if expect_value and started:
                    report.add(state["line"], "a ',' before ']' in the JSON array")
                advance(state["pos"] + 1)
                if skip_ws() is not None:  # nothing may follow the array: it would be read by nobody
                    report.add(state["line"], "text after the end of the JSON array (']')")
                return
            if char == ",":
                if expect_value:
                    report.add(state["line"], "unexpected ',' in the JSON array")
                    return
                expect_value = True
                advance(state["pos"] + 1)
                continue
            if not expect_value:
                report.add(state["line"], "missing ',' between elements of the JSON array")
                return
            while True:
                try:
                    value, end = decoder.raw_decode(state["buf"], state["pos"])
                    break
                except RecursionError:
                    report.add(state["line"], "JSON nested too deeply")
                    return
                except ValueError as exc:
                    if not refill():
                        report.add(state["line"], f"not valid JSON ({getattr(exc, 'msg', exc)})")
                        return
            obj = _object_or_problem(value, state["line"], report)
            if obj is not None:
                yield state["line"], obj
            advance(end)
            expect_value, started = False, True


def _csv(path: Path, report: ReadReport) -> Iterator[tuple[int, dict]]:
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.add(1, f"bad CSV header ({exc})")
            return
        if len(set(header)) != len(header) or not all(h.strip() for h in header):
            report.add(1, f"the CSV header must name every column once, got {header!r}")
            return
        width = len(header)
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                report.add(start, f"bad CSV row ({exc})")
                continue
            if not values:
                continue
            if len(values) != width:
                report.add(start, f"{len(values)} values for {width} columns")
                continue
            yield start, dict(zip(header, values))


def _parquet(path: Path, report: ReadReport) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
    except Exception as exc:
        report.add(1, f"not a readable Parquet file ({exc})")
        return
    number = 0
    batches = source.iter_batches(batch_size=2048)
    while True:
        try:
            batch = next(batches)
            rows = batch.to_pylist()
        except StopIteration:
            return
        except Exception as exc:  # a corrupt page: pyarrow raises OSError/ArrowException mid-file
            report.add(number + 1, f"unreadable Parquet data from row {number + 1} on "
                                   f"({type(exc).__name__}: {str(exc)[:200]}); the file is damaged: write or "
                                   "copy it again")
            return
        for row in rows:
            number += 1
            yield number, row
