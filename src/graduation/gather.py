"""Gathering evidence: the I/O edge between data files, verifiers, the verdict cache and the registry.

    result = evaluate(db, root, "arith", Path("outputs.jsonl"), model="m1", round=3)   # -> Gathered
    result = audit_data(db, root, "arith", Path("candidate_sft.jsonl"))
    result = check_verifiers(db, root, "arith")

Each reads the domain's registered version (and refuses when a file it references changed since), makes
sure ``verifier_validation`` evidence exists for the domain's current basis (running the validation when it
is missing), streams the rows, verifies them (cheap kinds in-process; the rest through the isolated pool,
with verdicts served from and stored to the cache), and builds the record with the pure functions of
``graduation.evidence``. Nothing is written until every row has been read: a malformed row raises
``DataError`` naming file:line and leaves the registry untouched. ``store=False`` returns the record only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.data import ReadReport, iter_rows
from graduation.errors import InputError
from graduation.evidence import (
    SymbolScanner,
    Tally,
    VerifierInfo,
    compile_slices,
    lineage,
    symbols_in,
    text_of_value,
    vocabulary_of,
)
from graduation.records import AuditItem, DataAuditRecord, EvalRecord, Record, VerifierValidationRecord
from graduation.spec import TRUSTED_PROVENANCE, DomainSpec, Provenance
from graduation.verifiers.base import Verifier, build
from graduation.verifiers.pool import VerifierPool
from graduation.verifiers.runner import UNVERIFIABLE as _UNVERIFIABLE
from graduation.verifiers.runner import UnverifiableAware as _UnverifiableAware
from graduation.verifiers.runner import Verification

CHUNK = 2048
MAX_VALIDATION_REFERENCES = 200
Progress = Callable[[int], None]


@dataclass
class DomainContext:
    """A registered domain version, its verifiers built, with its files checked against their hashes."""

    name: str
    version: int
    basis_hash: str
    spec: DomainSpec
    root: Path
    verifiers: list[Verifier]

    @property
    def infos(self) -> list[VerifierInfo]:
        return [VerifierInfo(v.name, v.role, v.kind, v.version) for v in self.verifiers]


@dataclass
class Gathered:
    """What a gathering produced: the record, and the evidence rows written (empty with ``store=False``)."""

    kind: str
    record: Record
    validation: VerifierValidationRecord | None = None
    validation_ran: bool = False
    data_hash: str | None = None
    evidence_uids: list[str] = field(default_factory=list)
    cache_hits: int = 0
    verified: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)


# -- the domain --------------------------------------------------------------------------------------

def load_context(db: Any, root: Path, domain: str) -> DomainContext:
    from graduation.identity import StatCache, check_files
    from graduation.store.chain import check_rows
    from graduation.store.domains import get_version, version_spec

    with db.read() as session:
        row = get_version(session, domain)
        check_rows(session, "domain_version", [row])
    spec = version_spec(row)
    # every file the version's identity covers (data, controls, verifier code, fixtures, packages), hashed in full
    changed = check_files(Path(root), json.loads(row.data_hashes_json), StatCache())
    if changed:
        raise InputError(f"{'; '.join(changed)}: changed since domain {domain!r} v{row.version} was registered; "
                         "run `registry register` so that evidence is counted against what decides now")
    verifiers = [build(v, root) for v in spec.verifiers]
    return DomainContext(domain, row.version, row.basis_hash, spec, Path(root), verifiers)


def row_keys(row: Mapping[str, Any], spec: DomainSpec) -> list[str]:
    """The keys a row is found by: its id (when the task has an id field), then its prompt."""
    task = spec.task
    keys = []
    if task.id_field:
        ident = row.get(task.id_field)
        if ident is not None:
            keys.append("id:" + (ident if type(ident) is str else str(ident)))
    prompt = row.get(task.prompt_field)
    if prompt is not None:
        keys.append("prompt:" + (prompt if type(prompt) is str else text_of_value(prompt)))
    return keys


def row_key(row: Mapping[str, Any], spec: DomainSpec) -> str | None:
    """The primary key of a row (id, else prompt): what groups samples of one prompt."""
    keys = row_keys(row, spec)
    return keys[0] if keys else None


def ground_truth_rows(ctx: DomainContext, *, splits: tuple[str, ...] | None = None, trusted_only: bool = False,
                      exclude: str | None = None) -> Iterator[tuple[Any, str, int, dict]]:
    """(source, file, line, row) of the domain's ground truth, optionally only some splits or trusted ones."""
    for source in ctx.spec.ground_truth:
        if splits is not None and source.split not in splits:
            continue
        if trusted_only and source.provenance not in TRUSTED_PROVENANCE:
            continue
        if exclude is not None and source.name == exclude:
            continue
        for line, row in iter_rows(ctx.root / source.path, display=source.path):
            yield source, source.path, line, row


class ReferenceIndex(dict):
    """Reference answer and row by key (``id:...`` and ``prompt:...``)."""

    def find(self, row: Mapping[str, Any], spec: DomainSpec) -> tuple[Any, dict] | None:
        return self.lookup(row_keys(row, spec))

    def lookup(self, keys: list[str]) -> tuple[Any, dict] | None:
        for key in keys:
            found = self.get(key)
            if found is not None:
                return found
        return None


def reference_index(ctx: DomainContext, splits: tuple[str, ...] | None, *, trusted_only: bool = False,
                    exclude: str | None = None) -> ReferenceIndex:
    """Reference answers from the ground truth of the given splits (trusted sources first)."""
    answer = ctx.spec.task.answer_field
    index = ReferenceIndex()
    problems = ReadReport("ground truth")
    ordered = list(ground_truth_rows(ctx, splits=splits, trusted_only=True, exclude=exclude))
    if not trusted_only:
        ordered += [r for r in ground_truth_rows(ctx, splits=splits, exclude=exclude)
                    if r[0].provenance not in TRUSTED_PROVENANCE]
    for _source, file, line, row in ordered:
        keys = row_keys(row, ctx.spec)
        if not keys or answer not in row:
            problems.add(line, f"{file}: the row has no {ctx.spec.task.prompt_field!r} or {answer!r} field")
            continue
        for key in keys:
            index.setdefault(key, (row[answer], row))
    problems.raise_if_any()
    return index


# -- validation ----------------------------------------------------------------------------------------

def validation_for(ctx: DomainContext, run: Callable, *, max_references: int = MAX_VALIDATION_REFERENCES
                   ) -> VerifierValidationRecord:
    """Validate every verifier of the domain against its references and controls (reads the files)."""
    from graduation.verifiers.validation import Control, validate

    answer = ctx.spec.task.answer_field
    notes: list[str] = []
    trusted = [(row[answer], row) for _s, _f, _l, row in ground_truth_rows(ctx, trusted_only=True) if answer in row]
    if not trusted:
        trusted = [(row[answer], row) for _s, _f, _l, row in ground_truth_rows(ctx) if answer in row]
        if trusted:
            notes.append("no trusted ground truth: references come from untrusted sources")
    if len(trusted) > max_references:
        step = len(trusted) / max_references
        trusted = [trusted[int(i * step)] for i in range(max_references)]
    index = None
    declared: dict[str, list[Control]] = {}
    for spec in ctx.spec.verifiers:
        if not spec.controls:
            continue
        report = ReadReport(spec.controls)
        controls = []
        for line, row in iter_rows(ctx.root / spec.controls, report, display=spec.controls):
            if "output" not in row:
                report.add(line, "a control needs an 'output' field (the known-wrong answer)")
                continue
            if answer in row:
                reference = row[answer]
            else:
                if index is None:
                    index = reference_index(ctx, None)
                found = index.find(row, ctx.spec)
                if found is None:
                    report.add(line, f"a control needs {answer!r}, or a prompt/id found in the ground truth")
                    continue
                reference, row = found[0], {**found[1], **row}
            controls.append(Control(text_of_value(row["output"]), reference, row, f"{spec.controls}:{line}"))
        report.raise_if_any()
        declared[spec.name] = controls
    return validate(ctx.verifiers, trusted, declared, run,
                    mutations_for={v.name: v.mutations for v in ctx.spec.verifiers}, notes=notes,
                    row_id=lambda row: (row_key(row, ctx.spec) or "").split(":", 1)[-1] or None)


def current_validation(db: Any, ctx: DomainContext) -> VerifierValidationRecord | None:
    from graduation.store.evidence import list_evidence

    with db.read() as session:
        found = list_evidence(session, ctx.name, basis_hash=ctx.basis_hash, kinds=["verifier_validation"])
    return found[-1].record if found else None  # type: ignore[return-value]


def check_verifiers(db: Any, root: Path, domain: str, *, pool: VerifierPool | None = None,
                    store: bool = True) -> Gathered:
    """Run verifier validation now and record it (``registry verifiers check``)."""
    ctx = load_context(db, root, domain)
    with _pool(pool) as active:
        record = sandboxed(validation_for(ctx, active.verify_many), ctx, active)
    result = Gathered("verifier_validation", record, record, True)
    if store:
        from graduation.store.evidence import add_evidence

        with db.write() as session:
            result.evidence_uids.append(add_evidence(session, ctx.name, "verifier_validation", record,
                                                     version=ctx.version).uid)
    return result


class _pool:
    """Use the caller's pool, or own one for the duration of a call."""

    def __init__(self, pool: VerifierPool | None) -> None:
        self.given = pool
        self.own: VerifierPool | None = None

    def __enter__(self) -> VerifierPool:
        if self.given is not None:
            return self.given
        self.own = VerifierPool()
        return self.own

    def __exit__(self, *exc) -> None:
        if self.own is not None:
            self.own.close()


# -- scanning ------------------------------------------------------------------------------------------

def _rows(source: Path | Iterable[Mapping[str, Any]], report: ReadReport, display: str
          ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if isinstance(source, (str, Path)):
        yield from iter_rows(Path(source), report, display=display)
    else:
        for number, row in enumerate(source, 1):
            if isinstance(row, Mapping):
                yield number, row
            else:
                report.add(number, f"expected a mapping, got {type(row).__name__}")


def _hash_rows(source: Path | Iterable[Mapping[str, Any]]) -> str | None:
    if isinstance(source, (str, Path)):
        from graduation.project import sha256_file

        return sha256_file(Path(source))
    if isinstance(source, (list, tuple)):
        return digest_rows(source)
    return None


def _display(source: Path | Iterable[Any], root: Path, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        try:
            return Path(source).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return str(source)
    return "<rows>"


def _supported_vocabulary(ctx: DomainContext, exclude: str | None = None) -> set[str]:
    """Identifiers of trusted ground truth, plus the domain's declared ``allowed_symbols``."""
    vocab = vocabulary_of(row for _s, _f, _l, row in ground_truth_rows(ctx, trusted_only=True, exclude=exclude))
    return vocab | {s.lower() for s in ctx.spec.allowed_symbols}


def _scan(ctx: DomainContext, rows: Iterator[tuple[int, Mapping[str, Any]]], report: ReadReport,
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


def _validate_and_scan(db, ctx: DomainContext, pool, cache: bool, verification_cls: type,
                       source: Path | Iterable[Mapping[str, Any]], report: ReadReport, tally: Tally,
                       resolve: Callable, display: str, progress: Progress | None, engine: Any = None,
                       sink: Any = None):
    """Validate the verifiers when the current basis has no validation yet, then verify every row (here, or
    with ``engine.scan`` on another engine: the same counts into the same tally). ``sink`` (here only) gets
    every item's verdicts (``--rows``, ``--write-clean``).

    Returns (validation record, whether validation ran now, the verification with its counters).
    """
    with _pool(pool) as active:
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
            _run_scan(ctx, source, report, verification, tally, resolve, display, progress, verification_cls,
                      sink=sink)
    if tally.symbols is not None and tally.symbols.needs_recount:
        tally.symbols = _recount_symbols(tally.symbols, source, resolve, display, ctx.spec.task.prompt_field)
    return validation, ran, verification


MAX_SYMBOL_CAPACITY = 1 << 18


def _recount_symbols(scanner: Any, source: Path | Iterable[Mapping[str, Any]], resolve: Callable,
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
        for line, row in _rows(source, quiet, display):
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


def _run_scan(ctx: DomainContext, source: Path | Iterable[Mapping[str, Any]], report: ReadReport,
              verification: Verification, tally: Tally, resolve: Callable, display: str,
              progress: Progress | None, verification_cls: type, sink: Any = None) -> None:
    """Scan in this process, or split a large JSONL file across one forked process per core.

    Only scans whose verifiers all run in-process are split (isolated kinds are already spread over the
    pool's workers). Each child scans a byte range that starts on a line boundary, with line numbers of its
    own range, and sends back its tally and the malformed rows it found; ranges are merged in file order.
    """
    import multiprocessing
    import os

    from graduation.data import detect_format, split_ranges

    workers = os.cpu_count() or 1
    parallel = (sink is None and isinstance(source, (str, Path)) and workers > 1 and not any(v.isolated for v in ctx.verifiers)
                and "fork" in multiprocessing.get_all_start_methods() and Path(source).is_file()
                and detect_format(Path(source)) == "jsonl" and Path(source).stat().st_size >= PARALLEL_MIN_BYTES)
    if not parallel:
        _scan(ctx, _rows(source, report, display), report, verification, tally, resolve, display, progress,
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

    from graduation.data import iter_jsonl_range

    code = 0
    try:
        report = ReadReport(display)
        verification = verification_cls(ctx.verifiers, pool, None, False)
        _scan(ctx, iter_jsonl_range(path, report, start, end, first_line), report, verification, tally, resolve,
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


def evaluate(db: Any, root: Path, domain: str, outputs: Path | Iterable[Mapping[str, Any]], *, model: Any,
             kind: str = "eval", job: str | None = None, step: int | None = None,
             pool: VerifierPool | None = None, cache: bool = True, store: bool = True,
             progress: Progress | None = None, name: str | None = None, engine: Any = None,
             stopped: str | None = None, rows_out: Path | None = None, origin: str = "submitted") -> Gathered:
    """Verify a model's outputs on held-out prompts and build (and record) an ``EvalRecord``.

    ``model``: a registered model (``NAME``, ``NAME@V``, ``sha256:HEX`` or a ``ModelInfo``); an unknown one
    is an ``InputError`` naming the register command. The round number is assigned by the registry: the
    next round of that model version in the domain's current basis. ``origin``: ``generated`` when the
    registry sampled the outputs from the registered artifact itself, else ``submitted``.

    ``outputs``: a data file (JSONL, JSON, CSV, Parquet) or rows already in memory (a training job's samples).
    Each row holds the prompt (or id) and the output; the reference comes only from the domain's registered
    eval ground truth (splits eval and all): a row whose prompt/id is not registered there is refused with
    its file:line (nothing written), whatever answer it carries. Samples of one prompt are one unit: the
    record's ``prompts``, ``coverage`` and ``wilson_lower`` are over distinct prompts (``prompt_bound``).
    Eval prompts that also occur in training sources are left out (``overlap_rows``). The same outputs
    content already recorded for the same registered model version is refused (``EvidenceRefused``, exit 1).
    ``kind="training_round"`` with ``job``/``step`` is what training jobs write. ``engine``: where the rows are
    verified (``graduation.engines``; ``None``: here); the record is the same. ``rows_out``: also write one
    JSON line per item (``graduation.rowlog``).
    """
    if kind not in ("eval", "training_round"):
        raise InputError(f"evaluate writes eval or training_round evidence, not {kind!r}")
    if origin not in ("submitted", "generated"):
        raise InputError(f"origin {origin!r}: submitted or generated")
    info = _model_info(db, model)
    ctx = load_context(db, root, domain)
    display = _display(outputs, root, name)
    task = ctx.spec.task
    index = reference_index(ctx, ("eval", "all"))
    if not index:
        raise InputError(f"domain {domain!r} has no registered eval prompts (ground truth with split: eval): "
                         "outputs can only be verified against registered held-out references")
    heldout = heldout_overlap(ctx)
    # a missing file is reported by the reader below, with its name
    data_hash = _hash_rows(outputs) if not isinstance(outputs, (str, Path)) or Path(outputs).is_file() else None
    if store and data_hash is not None:
        with db.read() as session:
            _refuse_repeat(session, ctx, info.id, data_hash, display)
    report = ReadReport(display)
    canonical: dict[int, str] = {}

    def resolve(line: int, row: Mapping[str, Any], report: ReadReport):
        if task.output_field not in row:
            report.add(line, f"no {task.output_field!r} field (the model's output); fields: {sorted(row)[:8]}")
            return None
        found = index.lookup(row_keys(row, ctx.spec))
        if found is None:
            report.add(line, f"{task.id_field or task.prompt_field!r} is not a registered eval prompt of "
                             f"{domain!r}: outputs are verified only against the domain's registered held-out "
                             "ground truth (split: eval), never against an answer in the outputs file")
            return None
        key = canonical.get(id(found[1]))
        if key is None:
            key = canonical[id(found[1])] = row_key(found[1], ctx.spec) or ""
        if key in heldout.keys:
            return ()  # left out on purpose: counted in the tally's ``skipped`` (here, in a forked part, on Ray)
        return row[task.output_field], found[0], found[1], key

    supported = _supported_vocabulary(ctx)
    tally = Tally(ctx.infos, compile_slices(ctx.spec.slices), SymbolScanner(supported), per_prompt=True)
    sink = _sink(ctx, display, supported, rows_out, None)
    try:
        validation, ran, verification = _validate_and_scan(db, ctx, pool, cache, Verification, outputs, report,
                                                           tally, resolve, display, progress, engine, sink)
        report.raise_if_any()
        registered = len({id(v[1]) for v in index.values()})
        prompts = len(tally.prompt_rates())
        record: EvalRecord = tally.eval_record(
            model=info.ref, round=None, outputs_file=display, job=job, step=step, eval_prompts=registered,
            coverage=min(1.0, prompts / registered) if registered else 0.0, overlap_prompts=len(heldout.exact),
            ngram_overlap_prompts=len(heldout.ngram), overlap_rows=tally.skipped,
            uncounted_verifiers=uncounted_verifiers(ctx, validation))
        record = record.model_copy(update={"origin": origin, **({"stopped": stopped} if stopped else {})})
        result = Gathered(kind, record, validation, ran, data_hash, cache_hits=verification.cache_hits,
                          verified=verification.verified)
        _store(db, ctx, result, verification, store, model_id=info.id)
        if sink is not None:
            result.rows_written = sink.finish({f.symbol for f in record.symbols})
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    return result


def _sink(ctx: DomainContext, display: str, supported: set[str], rows_out: Path | None,
          clean_out: Path | None) -> Any:
    if rows_out is None and clean_out is None:
        return None
    from graduation.rowlog import RowSink

    return RowSink(ctx.verifiers, display, rows_out=rows_out, clean_out=clean_out, supported=supported)


def evaluate_generated(db: Any, root: Path, domain: str, *, model: Any, samples: int = 0, temperature: float = 0.0,
                       max_new_tokens: int = 64, engine: str = "transformers", limit: int | None = None,
                       pool: VerifierPool | None = None, progress: Progress | None = None) -> Gathered:
    """Sample the registered artifact on the domain's held-out prompts, verify, record a ``generated`` round.

    The artifact's directory is hashed again first: it must still match the registered digest.
    """
    info = _model_info(db, model)
    if not info.path or info.digest_kind != "manifest":
        raise InputError(f"{info.ref} was registered by digest only ({info.digest_kind}); --generate samples the "
                         "files themselves: register the model directory with `registry models register "
                         f"{info.name} --path DIR`")
    ctx = load_context(db, root, domain)
    task = ctx.spec.task
    held_out = [row for _s, _f, _l, row in ground_truth_rows(ctx, splits=("eval",))] or \
        [row for _s, _f, _l, row in ground_truth_rows(ctx)]
    held_out = [row for row in held_out if task.prompt_field in row]
    if limit is not None:
        held_out = held_out[:limit]
    if not held_out:
        raise InputError(f"{domain}: no held-out prompts in its ground truth (split eval, else all)")
    from graduation.training.sample import check_artifact, sample  # torch/transformers only from here on

    check_artifact(Path(info.path), str(info.digest))
    rows = sample(Path(info.path), held_out, prompt_field=task.prompt_field, answer_field=task.answer_field,
                  id_field=task.id_field, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens,
                  engine=engine)
    rows = [{**({task.output_field: r.pop("output")}), **r} for r in rows]
    return evaluate(db, root, domain, rows, model=info, pool=pool, progress=progress, origin="generated",
                    name=f"{info.ref} sampled by the registry ({engine})")


def _model_info(db: Any, model: Any):
    """A registered model from a reference (or a ``ModelInfo`` as it is)."""
    from graduation.store.models import ModelInfo, resolve_model

    if isinstance(model, ModelInfo):
        return model
    if not isinstance(model, str) or not model.strip():
        raise InputError("name the model that wrote the outputs: --model NAME[@V]|sha256:HEX (a registered model)")
    with db.read() as session:
        return resolve_model(session, model)


def heldout_overlap(ctx: DomainContext):
    """Registered eval prompts (by canonical key) that also occur in the domain's training sources.

    Eval prompts come from the sources of split eval or all; training prompts from every *other* source of
    split train, and of split all when the domain declares a split-eval source. A domain with no split-eval
    source declares its split-all sources both training and held-out data: they are not compared with
    each other (declare ``split: eval`` to hold prompts out).
    """
    from graduation.heldout import Overlap, overlap

    prompt = ctx.spec.task.prompt_field
    evals: dict[str, str] = {}
    owner: dict[str, str] = {}
    by_source: dict[str, list[str]] = {}
    has_eval = any(s.split == "eval" for s in ctx.spec.ground_truth)
    training = ("train", "all") if has_eval else ("train",)
    for source, _file, _line, row in ground_truth_rows(ctx):
        if prompt not in row:
            continue
        text = text_of_value(row[prompt])
        if source.split in training:
            by_source.setdefault(source.name, []).append(text)
        if source.split in ("eval", "all"):
            key = row_key(row, ctx.spec)
            if key is not None and key not in evals:
                evals[key] = text
                owner[key] = source.name
    found = Overlap(len(evals))
    for name, texts in by_source.items():
        found.merge(overlap({k: t for k, t in evals.items() if owner[k] != name}, texts))
    return found


def heldout_report(spec: DomainSpec, root: Path) -> dict[str, Any]:
    """Held-out overlap of a loaded (not necessarily registered) domain, for `validate` and `register`."""
    found = heldout_overlap(DomainContext(spec.domain, 0, "", spec, Path(root), []))
    return {"eval_prompts": found.eval_prompts, "overlapping": len(found.exact), "overlap_rate": found.rate,
            "ngram": found.n, "ngram_overlapping": len(found.ngram), "ngram_overlap_rate": found.ngram_rate,
            "examples": sorted(found.exact)[:10], "message": found.describe()}


def uncounted_verifiers(ctx: DomainContext, validation: VerifierValidationRecord | None) -> list[str]:
    """Substance verifiers that the validation did not find trustworthy (or did not check)."""
    checks = {c.name: c for c in (validation.verifiers if validation is not None else [])}
    return sorted(v.name for v in ctx.verifiers if v.role == "substance"
                  and (v.name not in checks or not checks[v.name].trustworthy or checks[v.name].version != v.version))


def _refuse_repeat(session: Any, ctx: DomainContext, model_id: int, data_hash: str, display: str) -> None:
    """One file, one round: the same outputs content for the same registered model version is not a new round
    (exit 1)."""
    from graduation.errors import EvidenceRefused
    from graduation.store.evidence import list_evidence

    for earlier in list_evidence(session, ctx.name, basis_hash=ctx.basis_hash, kinds=["eval", "training_round"]):
        if earlier.data_hash == data_hash and earlier.model_id == model_id:
            which = f"round {earlier.round}" if earlier.round is not None else "an earlier round"
            raise EvidenceRefused(
                f"{display}: these outputs (sha256 {data_hash[:12]}) were already recorded for model "
                f"{earlier.model_key or earlier.model!r} as {which} (evidence {earlier.uid[:12]}, {earlier.kind}); "
                "the same file is one round, not a new one: evaluate new outputs of the model")


def audit_data(db: Any, root: Path, domain: str, dataset: Path | Iterable[Mapping[str, Any]], *,
               source: str | None = None, generated_by: str | None = None,
               derived_from: str | None = None, pool: VerifierPool | None = None, cache: bool = True,
               store: bool = True, progress: Progress | None = None, name: str | None = None,
               engine: Any = None, rows_out: Path | None = None, clean_out: Path | None = None) -> Gathered:
    """Scan a candidate SFT dataset and build (and record) a ``DataAuditRecord``.

    Each row's answer (its output field when present, else its answer field) is checked against the ground
    truth reference for its prompt; a row whose prompt has no reference cannot be verified (an ``error``,
    never a pass). Provenance and lineage come from ``source`` (a ground truth source of the domain; found
    by path when the file is one), or from ``generated_by``/``derived_from`` for other files. Generators are
    recorded by name; whether each graduated in this domain is looked up when deciding. ``rows_out``: one JSON
    line per row; ``clean_out``: only the rows that pass every substance verifier and carry no flagged symbol,
    with their lineage (``graduation.rowlog``).
    """
    ctx = load_context(db, root, domain)
    display = _display(dataset, root, name)
    task = ctx.spec.task
    sources = {s.name: s for s in ctx.spec.ground_truth}
    if source is None and isinstance(dataset, (str, Path)):
        source = next((s.name for s in ctx.spec.ground_truth if s.path == display), None)
    if source is not None:
        if source not in sources:
            raise InputError(f"--source {source!r} is not a ground truth source of {domain!r} "
                             f"(have: {', '.join(sorted(sources)) or 'none'})")
        provenance, depth, ungraduated = lineage(ctx.spec.ground_truth, source)
    elif generated_by is not None:
        provenance, depth, ungraduated = Provenance.model_generated.value, 1, [generated_by]
        if derived_from is not None:
            if derived_from not in sources:
                raise InputError(f"--derived-from {derived_from!r} is not a ground truth source of {domain!r}")
            _p, parent_depth, parent_ungraduated = lineage(ctx.spec.ground_truth, derived_from)
            depth += parent_depth
            ungraduated += [m for m in parent_ungraduated if m not in ungraduated]
    else:
        provenance, depth, ungraduated = Provenance.unknown.value, 1, []
    # A trusted source is its own reference and its own vocabulary; any other file is judged against the
    # trusted sources (all other sources when there is no trusted one), never against itself.
    self_trusted = source is not None and sources[source].provenance in TRUSTED_PROVENANCE
    exclude = None if self_trusted else source
    trusted = any(s.provenance in TRUSTED_PROVENANCE and s.name != exclude for s in ctx.spec.ground_truth)
    index = reference_index(ctx, None, trusted_only=trusted, exclude=exclude)
    report = ReadReport(display)

    def resolve(line: int, row: Mapping[str, Any], report: ReadReport):
        field_name = task.output_field if task.output_field in row else task.answer_field
        if field_name not in row:
            report.add(line, f"no {task.answer_field!r} (or {task.output_field!r}) field; fields: {sorted(row)[:8]}")
            return None
        keys = row_keys(row, ctx.spec)
        key = keys[0] if keys else None
        found = index.lookup(keys)
        if found is not None:
            return row[field_name], found[0], found[1], key
        if field_name == task.output_field and task.answer_field in row:
            return row[field_name], row[task.answer_field], row, key
        return row[field_name], _UNVERIFIABLE, row, key

    supported = _supported_vocabulary(ctx, exclude=exclude)
    tally = Tally(ctx.infos, compile_slices(ctx.spec.slices), SymbolScanner(supported), consistency=False)
    sink = _sink(ctx, display, supported, rows_out, clean_out)
    try:
        validation, ran, verification = _validate_and_scan(db, ctx, pool, cache, _UnverifiableAware, dataset,
                                                           report, tally, resolve, display, progress, engine,
                                                           sink)
        report.raise_if_any()
        data_hash = _hash_rows(dataset)
        record: DataAuditRecord = tally.audit_record(file=display, provenance=provenance, lineage_depth=depth)
        record = record.model_copy(update={"generators": list(dict.fromkeys(ungraduated)), "source": source,
                                           "sha256": data_hash})
        result = Gathered("data_audit", record, validation, ran, data_hash,
                          cache_hits=verification.cache_hits, verified=verification.verified)
        _store(db, ctx, result, verification, store)
        if sink is not None:
            lineage_fields = {"domain": ctx.name, "domain_version": ctx.version, "data_hash": result.data_hash,
                              "source": source, "provenance": provenance, "lineage_depth": depth,
                              "generated_by": generated_by, "generators": list(dict.fromkeys(ungraduated)),
                              "audit": result.evidence_uids[-1] if result.evidence_uids else None}
            result.rows_written = sink.finish({f.symbol for f in record.symbols}, lineage_fields)
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    return result


def sandboxed(record: Any, ctx: DomainContext, pool: Any) -> Any:
    """The record, saying how the domain's own code ran (``sandbox``) when it has python/command verifiers."""
    from graduation.verifiers.sandbox import DOMAIN_CODE_KINDS

    if record is None or not any(v.kind in DOMAIN_CODE_KINDS for v in ctx.verifiers):
        return record
    return record.model_copy(update={"sandbox": getattr(pool, "sandbox", None) or "bwrap"})


def _store(db: Any, ctx: DomainContext, result: Gathered, verification: Verification, store: bool,
           **meta: Any) -> None:
    result.record = sandboxed(result.record, ctx, verification.pool)
    if result.validation_ran:
        result.validation = sandboxed(result.validation, ctx, verification.pool)
    if not store:
        return
    from graduation.store.evidence import add_evidence

    with db.write() as session:
        if meta.get("model_id") is not None and result.data_hash is not None and result.kind != "data_audit":
            _refuse_repeat(session, ctx, meta["model_id"], result.data_hash,
                           getattr(result.record, "outputs_file", "") or "outputs")
        if result.validation_ran and result.validation is not None:
            result.evidence_uids.append(add_evidence(session, ctx.name, "verifier_validation", result.validation,
                                                     version=ctx.version).uid)
        if meta.get("model_id") is not None:
            from graduation.store.evidence import next_round

            number = next_round(session, ctx.name, ctx.basis_hash, meta["model_id"])
            result.record = result.record.model_copy(update={"round": number})
            meta["round"] = number
        result.evidence_uids.append(add_evidence(session, ctx.name, result.kind, result.record,
                                                 version=ctx.version, data_hash=result.data_hash, **meta).uid)
        verification.save(session)


def human_audit_items(db: Any, root: Path, domain: str, file: Path, *, pool: VerifierPool | None = None
                      ) -> list[AuditItem]:
    """Per-item human verdicts, each with the verifiers' verdict on the same item (for agreement).

    Rows: ``id``, ``verdict`` (pass or fail, the person's), and either ``verifier_verdict`` or the ``output``
    (with the prompt/id found in the ground truth, or the answer field) to verify now.
    """
    ctx = load_context(db, root, domain)
    task = ctx.spec.task
    display = _display(file, root, None)
    report = ReadReport(display)
    index = reference_index(ctx, None)
    pending: list[tuple[int, str, str, Any, Any, Mapping[str, Any]]] = []
    given: list[tuple[int, AuditItem]] = []
    for line, row in iter_rows(file, report, display=display):
        verdict = row.get("verdict")
        if verdict not in ("pass", "fail"):
            report.add(line, f"verdict must be 'pass' or 'fail' (the person's judgement), got {verdict!r}")
            continue
        item_id = row.get("id", row.get(task.id_field or "id"))
        if item_id is None:
            item_id = f"{display}:{line}"
        if row.get("verifier_verdict") is not None:
            if row["verifier_verdict"] not in ("pass", "fail", "error"):
                report.add(line, f"verifier_verdict must be pass, fail or error, got {row['verifier_verdict']!r}")
                continue
            given.append((line, AuditItem(id=str(item_id), verdict=verdict,
                                          verifier_verdict=row["verifier_verdict"])))
            continue
        if task.output_field not in row:
            given.append((line, AuditItem(id=str(item_id), verdict=verdict)))
            continue
        found = index.find(row, ctx.spec)
        if found is not None:
            pending.append((line, str(item_id), verdict, row[task.output_field], found[0], found[1]))
        elif task.answer_field in row:
            pending.append((line, str(item_id), verdict, row[task.output_field], row[task.answer_field], row))
        else:
            report.add(line, f"no reference for this item: give its prompt/id from the ground truth, "
                             f"its {task.answer_field!r}, or a verifier_verdict")
    report.raise_if_any()
    items = dict(given)
    substance = [v for v in ctx.verifiers if v.role == "substance"]
    if pending and substance:
        with _pool(pool) as active:
            per_verifier = [active.verify(v, [(p[3], p[4], p[5]) for p in pending]) for v in substance]
        for n, (line, item_id, verdict, *_rest) in enumerate(pending):
            verdicts = [vs[n].verdict for vs in per_verifier]
            combined = "error" if "error" in verdicts else "pass" if all(v == "pass" for v in verdicts) else "fail"
            items[line] = AuditItem(id=item_id, verdict=verdict, verifier_verdict=combined)
    elif pending:
        for line, item_id, verdict, *_rest in pending:
            items[line] = AuditItem(id=item_id, verdict=verdict)
    return [items[line] for line in sorted(items)]


def digest_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """A content hash of rows held in memory (what ``data_hash`` records for them)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8",
                                                                                         "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


__all__ = ["DomainContext", "Gathered", "Verification", "audit_data", "check_verifiers", "evaluate", "evaluate_generated",
           "human_audit_items", "load_context", "reference_index", "row_key", "validation_for"]
