"""What every gathering starts from: a registered domain version with its files checked, its references, its rows.

    ctx = load_context(db, root, "arith")          # the newest version; refuses when a covered file changed
    index = reference_index(ctx, ("eval", "all"))  # reference answer and row by ``id:...`` / ``prompt:...``
    for line, row in source_rows(path, report, display): ...

Rows are read by ``graduation.rows``; nothing here writes to the registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.errors import InputError
from graduation.evidence import VerifierInfo, text_of_value
from graduation.identity import StatCache, check_files
from graduation.records import Record, VerifierValidationRecord
from graduation.rows import ReadReport, iter_rows
from graduation.service.project import sha256_file
from graduation.service.rowlog import RowSink
from graduation.spec import TRUSTED_PROVENANCE, DomainSpec
from graduation.store.chain import check_rows
from graduation.store.domains import get_version, version_spec
from graduation.verifiers.base import Verifier, build
from graduation.verifiers.pool import VerifierPool
from graduation.verifiers.sandbox import DOMAIN_CODE_KINDS


CHUNK = 2048


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


def load_context(db: Any, root: Path, domain: str) -> DomainContext:
    with db.read() as session:
        row = get_version(session, domain)
        check_rows(session, "domain_version", [row])
    spec = version_spec(row)
    # every file the version's identity covers (data, controls, verifier code, fixtures, packages), hashed in full
    changed = check_files(Path(root), json.loads(row.data_hashes_json), StatCache(), spec)
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


class pool_scope:
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


def source_rows(source: Path | Iterable[Mapping[str, Any]], report: ReadReport, display: str
          ) -> Iterator[tuple[int, Mapping[str, Any]]]:
    if isinstance(source, (str, Path)):
        yield from iter_rows(Path(source), report, display=display)
    else:
        for number, row in enumerate(source, 1):
            if isinstance(row, Mapping):
                yield number, row
            else:
                report.add(number, f"expected a mapping, got {type(row).__name__}")


def hash_rows(source: Path | Iterable[Mapping[str, Any]]) -> str | None:
    if isinstance(source, (str, Path)):
        return sha256_file(Path(source))
    if isinstance(source, (list, tuple)):
        return digest_rows(source)
    return None


def display_name(source: Path | Iterable[Any], root: Path, name: str | None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        try:
            return Path(source).resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return str(source)
    return "<rows>"


def digest_rows(rows: Iterable[Mapping[str, Any]]) -> str:
    """A content hash of rows held in memory (what ``data_hash`` records for them)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8",
                                                                                         "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def sandboxed(record: Any, ctx: DomainContext, pool: Any) -> Any:
    """The record, saying how the domain's own code ran (``sandbox``) when it has python/command verifiers."""

    if record is None or not any(v.kind in DOMAIN_CODE_KINDS for v in ctx.verifiers):
        return record
    return record.model_copy(update={"sandbox": getattr(pool, "sandbox", None) or "bwrap"})


def row_sink(ctx: DomainContext, display: str, supported: set[str], rows_out: Path | None,
          clean_out: Path | None) -> Any:
    if rows_out is None and clean_out is None:
        return None

    return RowSink(ctx.verifiers, display, rows_out=rows_out, clean_out=clean_out, supported=supported)
