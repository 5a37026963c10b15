"""Verifying rows into a tally: in this process, split over forked processes for a large JSONL file, or on
another engine (``graduation.service.engines``), with the same counts either way.

    validation, ran, verification = validate_and_scan(db, ctx, pool, cache, Verification, source, report,
                                                      tally, resolve, display, progress)

``resolve(line, row, report)`` turns a row into (output, reference, reference row, prompt key), ``()`` for a
row left out on purpose, or ``None`` after reporting a malformed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from graduation.errors import InputError
from graduation.evidence import Tally, symbols_in, text_of_value, vocabulary_of
from graduation.rows import ReadReport, detect_format, iter_jsonl_range, split_ranges
from graduation.service.context import CHUNK, DomainContext, Progress, ground_truth_rows, pool_scope, source_rows
from graduation.service.validation import current_validation, validation_for
from graduation.service.verification import Verification


def supported_vocabulary(ctx: DomainContext, exclude: str | None = None) -> set[str]:
    """Identifiers of trusted ground truth, plus the domain's declared ``allowed_symbols``."""
    vocab = vocabulary_of(row for _s, _f, _l, row in ground_truth_rows(ctx, trusted_only=True, exclude=exclude))
    return vocab | {s.lower() for s in ctx.spec.allowed_symbols}


def scan_rows(ctx: DomainContext, rows: Iterator[tuple[int, Mapping[str, Any]]], report: ReadReport,
          verification: Verification, tally: Tally, resolve: Callable, display: str,
          progress: Progress | None, label_field: str = "label", sink: Any = None) -> None:
    chunk: list[tuple[int, Mapping[str, Any], Any, Any, Mapping[str, Any] | None, str | None]] = []
    substance = [j for j, v in enumerate(ctx.verifiers) if v.role == "substance"]
    has_slices = bool(tally.slices)
    done = 0

    def flush() -> None:
        nonlocal done
        columns = verification.run([(out, ref, refrow) for _l, _r, out, ref, refrow, _k in chunk])
        texts = [out if type(out) is str else text_of_value(out) for _l, _r, out, _f, _rr, _k in chunk]
        labels = None
        if tally.track_consistency:
            first = columns[substance[0]] if substance else [None] * len(chunk)
            labels = []
            for (_l, row, _o, _f, _rr, _k), verdict, text in zip(chunk, first, texts):
                label = row.get(label_field)
                if label is None and verdict is not None:
                    label = verdict[2]
                labels.append(text.strip() if label is None else label)
        if has_slices:
            rows_for = [{**refrow, **row} if refrow is not None and refrow is not row else row
                        for _l, row, _o, _f, refrow, _k in chunk]
        else:
            rows_for = [item[1] for item in chunk]
        symbol_texts = texts
        if tally.symbols is not None:
            prompt_field = ctx.spec.task.prompt_field
            symbol_texts = [without_prompt_symbols(text, (refrow if refrow is not None else row).get(prompt_field))
                            for (_l, row, _o, _f, refrow, _k), text in zip(chunk, texts)]
        tally.add_batch(rows_for, columns, prompt_keys=[item[5] for item in chunk], labels=labels,
                        symbol_texts=symbol_texts, wheres=[(display, item[0]) for item in chunk])
        if sink is not None:
            sink.add(chunk, columns, symbol_texts)
        done += len(chunk)
        chunk.clear()
        if progress is not None:
            progress(done)

    append = chunk.append
    for line, row in rows:
        resolved = resolve(line, row, report)
        if not resolved:
            if resolved is not None:  # () : a row left out on purpose (a held-out prompt seen in training)
                tally.skipped += 1
            continue
        append((line, row) + resolved)
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()


def without_prompt_symbols(text: str, prompt: Any) -> str:
    """The text with identifiers that its own prompt contains blanked out: an output may repeat the names the
    prompt gave it (``x_1``, ``k_max``) without inventing them."""
    if not text or prompt is None:
        return text
    found = symbols_in(text)
    if not found:
        return text
    given = found & vocabulary_of([prompt])
    if not given:
        return text
    pattern = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(re.escape(t) for t in sorted(given, key=len, reverse=True))
                         + r")(?![A-Za-z0-9_])", re.IGNORECASE)
    return pattern.sub(" ", text)


PARALLEL_MIN_BYTES = 16 << 20


def validate_and_scan(db, ctx: DomainContext, pool, cache: bool, verification_cls: type,
                       source: Path | Iterable[Mapping[str, Any]], report: ReadReport, tally: Tally,
                       resolve: Callable, display: str, progress: Progress | None, engine: Any = None,
                       sink: Any = None):
    """Validate the verifiers when the current basis has no validation yet, then verify every row (here, or
    with ``engine.scan`` on another engine: the same counts into the same tally). ``sink`` (here only) gets
    every item's verdicts (``--rows``, ``--write-clean``).

    Returns (validation record, whether validation ran now, the verification with its counters).
    """
    with pool_scope(pool) as active:
        validation = current_validation(db, ctx)
        ran = validation is None
        if ran:
            validation = validation_for(ctx, active.verify_many)
        verification = verification_cls(ctx.verifiers, active, db, cache)
        if engine is not None:
            if sink is not None:
                raise InputError("--rows and --write-clean need the local engine: drop --engine ray, or write "
                                 "the rows of a smaller sample locally")
            engine.scan(ctx, source, report, verification, tally, resolve, display, progress, verification_cls)
        else:
            run_scan(ctx, source, report, verification, tally, resolve, display, progress, verification_cls,
                      sink=sink)
    if tally.symbols is not None and tally.symbols.needs_recount:
        tally.symbols = recount_symbols(tally.symbols, source, resolve, display, ctx.spec.task.prompt_field)
    return validation, ran, verification


MAX_SYMBOL_CAPACITY = 1 << 18


def recount_symbols(scanner: Any, source: Path | Iterable[Mapping[str, Any]], resolve: Callable,
                     display: str, prompt_field: str | None = None) -> Any:
    """The symbol summary overflowed: read the rows again and count its candidates exactly.

    When the summary's bounds were too loose for the threshold (rows with very many distinct invented tokens,
    ``scanner.complete`` false), the rows are first summarised again with four times the capacity (up to
    ``MAX_SYMBOL_CAPACITY``). A one-shot iterator cannot be read twice; its flags then rest on the summary's
    upper bounds. Returns the scanner that holds the result.
    """
    if not isinstance(source, (str, Path, list, tuple)):
        return scanner
    quiet = ReadReport(display)
    prompt_field = prompt_field or ""

    def texts() -> Iterator[tuple[str, tuple[str, int]]]:
        for line, row in source_rows(source, quiet, display):
            resolved = resolve(line, row, quiet)
            if not resolved:
                continue
            out, _ref, refrow = resolved[0], resolved[1], resolved[2]
            text = out if type(out) is str else text_of_value(out)
            # the same text the scan counted: identifiers of the row's own prompt left out
            yield without_prompt_symbols(text, (refrow if refrow is not None else row).get(prompt_field)), \
                (display, line)

    while not scanner.complete and scanner.capacity < MAX_SYMBOL_CAPACITY:
        wider = type(scanner)(scanner.supported, scanner.min_rate, scanner.min_rows, scanner.max_examples,
                              min(scanner.capacity * 4, MAX_SYMBOL_CAPACITY))
        for text, where in texts():
            wider.add(text, where)
        scanner = wider
    if scanner.needs_recount:
        scanner.recount(texts())
    return scanner


def run_scan(ctx: DomainContext, source: Path | Iterable[Mapping[str, Any]], report: ReadReport,
              verification: Verification, tally: Tally, resolve: Callable, display: str,
              progress: Progress | None, verification_cls: type, sink: Any = None) -> None:
    """Scan in this process, or split a large JSONL file across one forked process per core.

    Only scans whose verifiers all run in-process are split (isolated kinds are already spread over the
    pool's workers). Each child scans a byte range that starts on a line boundary, with line numbers of its
    own range, and sends back its tally and the malformed rows it found; ranges are merged in file order.
    """
    import multiprocessing
    import os

    workers = os.cpu_count() or 1
    parallel = (sink is None and isinstance(source, (str, Path)) and workers > 1 and not any(v.isolated for v in ctx.verifiers)
                and "fork" in multiprocessing.get_all_start_methods() and Path(source).is_file()
                and detect_format(Path(source)) == "jsonl" and Path(source).stat().st_size >= PARALLEL_MIN_BYTES)
    if not parallel:
        scan_rows(ctx, source_rows(source, report, display), report, verification, tally, resolve, display, progress,
              sink=sink)
        return
    ranges = split_ranges(Path(source), workers)
    fork = multiprocessing.get_context("fork")
    children = []
    for start, end, first_line in ranges:
        parent_end, child_end = fork.Pipe(duplex=False)
        process = fork.Process(target=_scan_part, daemon=True, args=(
            child_end, ctx, Path(source), start, end, first_line, resolve, display, tally.fresh(),
            verification_cls, verification.pool))
        process.start()
        child_end.close()
        children.append((process, parent_end))
    from multiprocessing.connection import wait

    done = [0] * len(children)
    states: list[Any] = [None] * len(children)
    open_conns = {conn: i for i, (_p, conn) in enumerate(children)}
    while open_conns:
        for conn in wait(list(open_conns)):
            i = open_conns[conn]
            try:
                kind, payload = conn.recv()
            except EOFError:
                del open_conns[conn]
                if states[i] is None:
                    raise InputError(f"{display}: the scan of rows from line {ranges[i][2]} stopped "
                                     f"(process exit code {children[i][0].exitcode}); nothing was written")
                continue
            if kind == "progress":
                done[i] = payload
                if progress is not None:
                    progress(sum(done))
            elif kind == "error":
                for process, _conn in children:
                    process.kill()
                raise payload
            else:
                states[i] = payload
    for process, _conn in children:
        process.join()
    for tally_state, problems, count in states:
        tally.merge(tally_state)
        for line, message in problems:
            report.add(line, message)
        report.count += count - len(problems)


def _scan_part(conn: Any, ctx: DomainContext, path: Path, start: int, end: int, first_line: int,
               resolve: Callable, display: str, tally: Tally, verification_cls: type, pool: Any) -> None:
    """A forked child: scan one byte range, send back the tally; leave without running the parent's exit hooks."""
    import os

    code = 0
    try:
        report = ReadReport(display)
        verification = verification_cls(ctx.verifiers, pool, None, False)
        scan_rows(ctx, iter_jsonl_range(path, report, start, end, first_line), report, verification, tally, resolve,
              display, lambda n: conn.send(("progress", n)))
        conn.send(("done", (tally.state(), report.problems, report.count)))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
        code = 1
        try:
            conn.send(("error", exc if isinstance(exc, Exception) else RuntimeError(repr(exc))))
        except Exception:
            pass
    finally:
        conn.close()
        os._exit(code)
