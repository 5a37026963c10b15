"""Running a domain's verifiers over chunks of items: in-process, from the verdict cache, or in the pool.

    verification = Verification(verifiers, pool, db)        # db=None: no cache
    columns = verification.run([(output, reference, row), ...])   # columns[j][i]: verifier j on item i
    with db.write() as session:
        verification.save(session)                           # the new settled verdicts go to the cache

Cheap kinds (``isolated=False``) are called in this process; every other kind is looked up in the cache by
(identity, reference, output, row) and, when missing, checked in the isolated pool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from graduation.store.verdicts import Groups, cache_key, get_many, put_many
from graduation.verifiers.base import Verdict, Verifier, safe_call
from graduation.verifiers.pool import VerifierPool


class Verification:
    """Verifies chunks of items with every verifier of a domain: in-process, cached, or in the pool."""

    def __init__(self, verifiers: list[Verifier], pool: VerifierPool | None, db: Any = None,
                 cache: bool = True) -> None:
        self.verifiers = verifiers
        self.pool = pool
        self.db = db if cache else None
        self.new_entries: dict[str, tuple[str, float, str | None]] = {}
        self.groups = Groups()  # the cached groups read so far (each checked whole once)
        self.cache_hits = 0
        self.verified = 0

    def run(self, items: list[tuple[Any, Any, Mapping[str, Any] | None]]) -> list[list[Verdict]]:
        """Verdicts as columns: ``result[j][i]`` is verifier j's verdict on item i."""
        columns = []
        for verifier in self.verifiers:
            if verifier.isolated:
                columns.append(self._isolated(verifier, items))
                continue
            check = verifier.check
            try:
                column = [check(output, reference, row) for output, reference, row in items]
            except Exception:  # a check that raised: redo the chunk item by item, naming the error
                column = [safe_call(check, output, reference, row) for output, reference, row in items]
            self.verified += len(items)
            columns.append(column)
        return columns

    def _isolated(self, verifier: Verifier, items: list[tuple[Any, Any, Any]]) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(items)
        keys: list[str | None] = [None] * len(items)
        if self.db is not None:
            identity = verifier.identity
            keys = [cache_key(identity, ref, out, row) for out, ref, row in items]
            wanted = [k for k in keys if k not in self.new_entries]
            with self.db.read() as session:
                found = get_many(session, wanted, self.groups)
            found.update({k: self.new_entries[k] for k in keys if k in self.new_entries})
            for i, key in enumerate(keys):
                hit = _settled(found.get(key))
                if hit is not None:
                    verdict, score, extra = hit
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
            put_many(session, self.new_entries)


def _settled(hit: Any) -> tuple[str, float, dict] | None:
    """A cached (verdict, score, detail) as it was written (a settled verdict, a number, a JSON object), or None:
    a row edited into anything else is verified again, never a traceback."""
    if hit is None:
        return None
    verdict, score, detail = hit
    try:
        extra = json.loads(detail) if detail else {}
    except (TypeError, ValueError):
        return None
    if verdict not in ("pass", "fail") or not isinstance(extra, dict) or not isinstance(score, (int, float)):
        return None
    return verdict, float(score), extra


class _Unverifiable:
    def __repr__(self) -> str:
        return "<no reference>"

    def __reduce__(self) -> str:
        return "UNVERIFIABLE"  # one object in every process: ``ref is UNVERIFIABLE`` holds after pickling


UNVERIFIABLE = _Unverifiable()


class UnverifiableAware(Verification):
    """Rows without a reference get ``error`` from substance verifiers; format verifiers still run."""

    def run(self, items):
        if not any(ref is UNVERIFIABLE for _o, ref, _r in items):
            return super().run(items)
        known = [i for i, (_o, ref, _r) in enumerate(items) if ref is not UNVERIFIABLE]
        unknown = [i for i, (_o, ref, _r) in enumerate(items) if ref is UNVERIFIABLE]
        columns: list[list[Verdict]] = [[None] * len(items) for _ in self.verifiers]  # type: ignore[list-item]
        if known:
            for column, verdicts in zip(columns, super().run([items[i] for i in known])):
                for i, verdict in zip(known, verdicts):
                    column[i] = verdict
        missing = Verdict.error("no reference for this prompt in the ground truth: cannot verify")
        for column, verifier in zip(columns, self.verifiers):
            if verifier.role == "format":
                unreferenced = [(items[i][0], None, items[i][2]) for i in unknown]
                verdicts = self.pool.verify(verifier, unreferenced) if verifier.isolated else \
                    [verifier(*item) for item in unreferenced]
            else:
                verdicts = [missing] * len(unknown)
            for i, verdict in zip(unknown, verdicts):
                column[i] = verdict
        return columns


__all__ = ["UNVERIFIABLE", "UnverifiableAware", "Verification"]
