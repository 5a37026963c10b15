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
    text_of_value,
    vocabulary_of,
)
from graduation.records import AuditItem, DataAuditRecord, EvalRecord, Record, VerifierValidationRecord
from graduation.spec import TRUSTED_PROVENANCE, DomainSpec, Provenance
from graduation.verifiers.base import Verdict, Verifier, build, safe_call
from graduation.verifiers.pool import VerifierPool

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


# -- the domain --------------------------------------------------------------------------------------

def load_context(db: Any, root: Path, domain: str) -> DomainContext:
    from graduation.project import sha256_file
    from graduation.store.domains import get_version, version_spec

    with db.read() as session:
        row = get_version(session, domain)
    spec = version_spec(row)
    for rel, digest in sorted(json.loads(row.data_hashes_json).items()):
        path = Path(root) / rel
        if not path.is_file():
            raise InputError(f"{rel}: referenced by domain {domain!r} v{row.version} but missing; restore it or "
                             "fix the domain file and `registry register` it again")
        if sha256_file(path) != digest:
            raise InputError(f"{rel}: changed since domain {domain!r} v{row.version} was registered; run "
                             "`registry register` so that evidence is counted against the new data")
    verifiers = [build(v, root) for v in spec.verifiers]
    return DomainContext(domain, row.version, row.basis_hash, spec, Path(root), verifiers)


def row_keys(row: Mapping[str, Any], spec: DomainSpec) -> list[str]:
    """The keys a row is found by: its id (when the task has an id field), then its prompt."""
    task = spec.task
    keys = []
    if task.id_field and row.get(task.id_field) is not None:
        keys.append(f"id:{row[task.id_field]}")
    prompt = row.get(task.prompt_field)
    if prompt is not None:
        keys.append("prompt:" + (prompt if isinstance(prompt, str) else text_of_value(prompt)))
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
        for key in row_keys(row, spec):
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


# -- verification with the cache ---------------------------------------------------------------------

class Verification:
    """Verifies chunks of items with every verifier of a domain: in-process, cached, or in the pool."""

    def __init__(self, verifiers: list[Verifier], pool: VerifierPool | None, db: Any = None,
                 cache: bool = True) -> None:
        self.verifiers = verifiers
        self.pool = pool
        self.db = db if cache else None
        self.new_entries: dict[str, tuple[str, float, str | None]] = {}
        self.cache_hits = 0
        self.verified = 0

    def run(self, items: list[tuple[Any, Any, Mapping[str, Any] | None]]) -> list[list[Verdict]]:
        per_item: list[list[Verdict]] = [[None] * len(self.verifiers) for _ in items]  # type: ignore[list-item]
        for j, verifier in enumerate(self.verifiers):
            if not verifier.isolated:
                check = verifier.check
                for i, (output, reference, row) in enumerate(items):
                    try:
                        per_item[i][j] = check(output, reference, row)
                    except Exception:  # the slow path names the error
                        per_item[i][j] = safe_call(check, output, reference, row)
                self.verified += len(items)
                continue
            verdicts = self._isolated(verifier, items)
            for i, verdict in enumerate(verdicts):
                per_item[i][j] = verdict
        return per_item

    def _isolated(self, verifier: Verifier, items: list[tuple[Any, Any, Any]]) -> list[Verdict]:
        from graduation.store.verdicts import cache_key, get_many

        results: list[Verdict | None] = [None] * len(items)
        keys: list[str | None] = [None] * len(items)
        if self.db is not None:
            identity = verifier.identity
            keys = [cache_key(identity, ref, out) for out, ref, _ in items]
            wanted = [k for k in keys if k not in self.new_entries]
            with self.db.read() as session:
                found = get_many(session, wanted)
            found.update({k: self.new_entries[k] for k in keys if k in self.new_entries})
            for i, key in enumerate(keys):
                hit = found.get(key)
                if hit is not None:
                    verdict, score, detail = hit
                    extra = json.loads(detail) if detail else {}
                    results[i] = Verdict(verdict, score, extra.get("answer"), extra.get("explanation"))
                    self.cache_hits += 1
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            if self.pool is None:
                self.pool = VerifierPool()
            fresh = self.pool.verify(verifier, [items[i] for i in missing])
            self.verified += len(missing)
            for i, verdict in zip(missing, fresh):
                results[i] = verdict
                if keys[i] is not None and verdict.verdict in ("pass", "fail"):
                    self.new_entries[keys[i]] = (verdict.verdict, verdict.score, json.dumps(
                        {"answer": verdict.answer, "explanation": verdict.explanation}, ensure_ascii=False))
        return results  # type: ignore[return-value]

    def save(self, session: Any) -> None:
        if self.new_entries:
            from graduation.store.verdicts import put_many

            put_many(session, self.new_entries)


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
                    mutations_for={v.name: v.mutations for v in ctx.spec.verifiers}, notes=notes)


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
        record = validation_for(ctx, active.verify_many)
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
    return vocabulary_of(row for _s, _f, _l, row in ground_truth_rows(ctx, trusted_only=True, exclude=exclude))


def _scan(ctx: DomainContext, rows: Iterator[tuple[int, Mapping[str, Any]]], report: ReadReport,
          verification: Verification, tally: Tally, resolve: Callable, display: str,
          progress: Progress | None, label_field: str = "label") -> None:
    chunk: list[tuple[int, Mapping[str, Any], Any, Any, Mapping[str, Any] | None, str | None]] = []
    substance = [j for j, v in enumerate(ctx.verifiers) if v.role == "substance"]
    has_slices = bool(tally.slices)
    done = 0

    def flush() -> None:
        nonlocal done
        verdicts = verification.run([(out, ref, refrow) for _l, _r, out, ref, refrow, _k in chunk])
        for (line, row, out, _ref, refrow, key), item_verdicts in zip(chunk, verdicts):
            label = row.get(label_field)
            if label is None and substance:
                label = item_verdicts[substance[0]].answer
            if label is None:
                label = out if isinstance(out, str) else text_of_value(out)
            merged = {**refrow, **row} if has_slices and refrow is not None and refrow is not row else row
            tally.add(merged, item_verdicts, prompt_key=key, label=label,
                      symbol_text=out if isinstance(out, str) else text_of_value(out), where=f"{display}:{line}")
        done += len(chunk)
        chunk.clear()
        if progress is not None:
            progress(done)

    for line, row in rows:
        resolved = resolve(line, row)
        if resolved is None:
            continue
        chunk.append((line, row, *resolved))
        if len(chunk) >= CHUNK:
            flush()
    if chunk:
        flush()


def evaluate(db: Any, root: Path, domain: str, outputs: Path | Iterable[Mapping[str, Any]], *, model: str,
             round: int | None = None, kind: str = "eval", job: str | None = None, step: int | None = None,
             pool: VerifierPool | None = None, cache: bool = True, store: bool = True,
             progress: Progress | None = None, name: str | None = None) -> Gathered:
    """Verify a model's outputs on held-out prompts and build (and record) an ``EvalRecord``.

    ``outputs``: a data file (JSONL, JSON, CSV, Parquet) or rows already in memory (a training job's samples).
    Each row holds the prompt (or id) and the output; the reference comes from the domain's ground truth
    (eval and all splits), or from the row's answer field when the prompt is not in the ground truth.
    ``kind="training_round"`` with ``job``/``step`` is what training jobs write.
    """
    if kind not in ("eval", "training_round"):
        raise InputError(f"evaluate writes eval or training_round evidence, not {kind!r}")
    ctx = load_context(db, root, domain)
    display = _display(outputs, root, name)
    task = ctx.spec.task
    index = reference_index(ctx, ("eval", "all")) or reference_index(ctx, None)
    report = ReadReport(display)

    def resolve(line: int, row: Mapping[str, Any]):
        if task.output_field not in row:
            report.add(line, f"no {task.output_field!r} field (the model's output); fields: {sorted(row)[:8]}")
            return None
        key = row_key(row, ctx.spec)
        found = index.find(row, ctx.spec)
        if found is not None:
            return row[task.output_field], found[0], found[1], key
        if task.answer_field in row:
            return row[task.output_field], row[task.answer_field], row, key
        report.add(line, f"prompt not in the domain's ground truth and no {task.answer_field!r} field: "
                         "cannot tell what is correct")
        return None

    tally = Tally(ctx.infos, compile_slices(ctx.spec.slices), SymbolScanner(_supported_vocabulary(ctx)))
    with _pool(pool) as active:
        validation = current_validation(db, ctx)
        ran = validation is None
        if ran:
            validation = validation_for(ctx, active.verify_many)
        verification = Verification(ctx.verifiers, active, db, cache)
        _scan(ctx, _rows(outputs, report, display), report, verification, tally, resolve, display, progress)
    report.raise_if_any()
    record: EvalRecord = tally.eval_record(model=model, round=round, outputs_file=display, job=job, step=step)
    result = Gathered(kind, record, validation, ran, _hash_rows(outputs), cache_hits=verification.cache_hits,
                      verified=verification.verified)
    _store(db, ctx, result, verification, store, model=model, round=round)
    return result


def audit_data(db: Any, root: Path, domain: str, dataset: Path | Iterable[Mapping[str, Any]], *,
               source: str | None = None, generated_by: str | None = None, graduated: bool = False,
               derived_from: str | None = None, pool: VerifierPool | None = None, cache: bool = True,
               store: bool = True, progress: Progress | None = None, name: str | None = None) -> Gathered:
    """Scan a candidate SFT dataset and build (and record) a ``DataAuditRecord``.

    Each row's answer (its output field when present, else its answer field) is checked against the ground
    truth reference for its prompt; a row whose prompt has no reference cannot be verified (an ``error``,
    never a pass). Provenance and lineage come from ``source`` (a ground truth source of the domain; found
    by path when the file is one), or from ``generated_by``/``graduated``/``derived_from`` for other files.
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
        provenance, depth, ungraduated = Provenance.model_generated.value, 1, [] if graduated else [generated_by]
        if derived_from is not None:
            if derived_from not in sources:
                raise InputError(f"--derived-from {derived_from!r} is not a ground truth source of {domain!r}")
            _p, parent_depth, parent_ungraduated = lineage(ctx.spec.ground_truth, derived_from)
            depth += parent_depth
            ungraduated += [m for m in parent_ungraduated if m not in ungraduated]
    else:
        provenance, depth, ungraduated = Provenance.unknown.value, 1, []
    trusted = any(s.provenance in TRUSTED_PROVENANCE and s.name != source for s in ctx.spec.ground_truth)
    index = reference_index(ctx, None, trusted_only=trusted, exclude=source)
    report = ReadReport(display)

    def resolve(line: int, row: Mapping[str, Any]):
        field_name = task.output_field if task.output_field in row else task.answer_field
        if field_name not in row:
            report.add(line, f"no {task.answer_field!r} (or {task.output_field!r}) field; fields: {sorted(row)[:8]}")
            return None
        key = row_key(row, ctx.spec)
        found = index.find(row, ctx.spec)
        if found is not None:
            return row[field_name], found[0], found[1], key
        if field_name == task.output_field and task.answer_field in row:
            return row[field_name], row[task.answer_field], row, key
        return row[field_name], _UNVERIFIABLE, row, key

    tally = Tally(ctx.infos, compile_slices(ctx.spec.slices),
                  SymbolScanner(_supported_vocabulary(ctx, exclude=source)), consistency=False)
    with _pool(pool) as active:
        validation = current_validation(db, ctx)
        ran = validation is None
        if ran:
            validation = validation_for(ctx, active.verify_many)
        verification = _UnverifiableAware(ctx.verifiers, active, db, cache)
        _scan(ctx, _rows(dataset, report, display), report, verification, tally, resolve, display, progress)
    report.raise_if_any()
    record: DataAuditRecord = tally.audit_record(file=display, provenance=provenance, lineage_depth=depth,
                                                 ungraduated_generators=ungraduated)
    result = Gathered("data_audit", record, validation, ran, _hash_rows(dataset),
                      cache_hits=verification.cache_hits, verified=verification.verified)
    _store(db, ctx, result, verification, store)
    return result


class _Unverifiable:
    def __repr__(self) -> str:
        return "<no reference>"


_UNVERIFIABLE = _Unverifiable()


class _UnverifiableAware(Verification):
    """Rows without a reference get ``error`` from substance verifiers; format verifiers still run."""

    def run(self, items):
        if not any(ref is _UNVERIFIABLE for _o, ref, _r in items):
            return super().run(items)
        known = [i for i, (_o, ref, _r) in enumerate(items) if ref is not _UNVERIFIABLE]
        out: list[list[Verdict]] = [[None] * len(self.verifiers) for _ in items]  # type: ignore[list-item]
        for i, verdicts in zip(known, super().run([items[i] for i in known]) if known else []):
            out[i] = verdicts
        fmt = [j for j, v in enumerate(self.verifiers) if v.role == "format"]
        for i, (output, _ref, row) in enumerate(items):
            if items[i][1] is not _UNVERIFIABLE:
                continue
            for j, verifier in enumerate(self.verifiers):
                if j in fmt:
                    out[i][j] = verifier(output, None, row) if not verifier.isolated else \
                        self.pool.verify(verifier, [(output, None, row)])[0]
                else:
                    out[i][j] = Verdict.error("no reference for this prompt in the ground truth: cannot verify")
        return out


def _store(db: Any, ctx: DomainContext, result: Gathered, verification: Verification, store: bool,
           **meta: Any) -> None:
    if not store:
        return
    from graduation.store.evidence import add_evidence

    with db.write() as session:
        if result.validation_ran and result.validation is not None:
            result.evidence_uids.append(add_evidence(session, ctx.name, "verifier_validation", result.validation,
                                                     version=ctx.version).uid)
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


__all__ = ["DomainContext", "Gathered", "Verification", "audit_data", "check_verifiers", "evaluate",
           "human_audit_items", "load_context", "reference_index", "row_key", "validation_for"]
