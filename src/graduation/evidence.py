"""Evidence from verdicts: pure functions, no I/O (rates in ``stats``, symbol scanning in ``symbols``).

- ``wilson_lower(passed, n)``: the Wilson 95% lower bound (7/8 -> about 0.53), as statsmodels computes it;
- ``Tally``: feed it one row and its verdicts at a time (memory does not grow with rows, except one small
  integer per prompt for consistency), then ask for an ``EvalRecord`` or a ``DataAuditRecord``;
- ``compile_slices``: a domain's slices as predicates over a row (field/equals, or CEL compiled once);
- ``SymbolScanner``: identifiers that recur in outputs or data but never occur in trusted ground truth;
- ``lineage``: provenance, depth of model-written copies and ungraduated generators of a source;
- ``agreement``: how often verifiers and people agree on the same items.

Conventions: an item passes when every *substance* verifier passes (an ``error`` is never a pass); with no
substance verifier nothing passes. The shape gap is the format pass rate minus the substance pass rate; with
no format verifier no gap is measured (0.0).

Over 400 lines because the tally and the records it builds are one structure, merged across processes and
engines field by field.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graduation.cel_loader import load_cel
from graduation.errors import InputError
from graduation.records import (
    AuditItem,
    Consistency,
    DataAuditRecord,
    EvalRecord,
    SliceStats,
    VerifierStats,
)
from graduation.spec import lineage_depths
from graduation.stats import Z95, prompt_bound, rate, shape_gap, wilson_interval, wilson_lower
from graduation.symbols import SymbolScanner, symbols_in, text_of_value, vocabulary_of, where_text

# -- slices ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Slice:
    name: str
    matches: Callable[[Mapping[str, Any]], bool]


def compile_slices(slices: Sequence[Any]) -> list[Slice]:
    """Predicates for a domain's ``SliceSpec`` list; a CEL predicate is compiled once, here.

    A row on which a CEL predicate errors (a missing field, a type mismatch) is not in the slice.
    """
    compiled = []
    for spec in slices:
        if spec.when is not None:
            compiled.append(Slice(spec.name, _cel_predicate(spec.name, spec.when)))
        else:
            compiled.append(Slice(spec.name, _equals_predicate(spec.field, spec.equals)))
    return compiled


def _cel_module() -> Any:
    return load_cel()


def _cel_predicate(name: str, expression: str) -> Callable[[Mapping[str, Any]], bool]:
    cel = _cel_module()
    try:
        program = cel.compile(expression)
    except Exception as exc:
        raise InputError(f"slice {name!r}: the CEL predicate {expression!r} does not compile: {exc}") from None

    def matches(row: Mapping[str, Any]) -> bool:
        try:
            return program.execute(dict(row)) is True
        except Exception:
            return False

    return matches


def _equals_predicate(field_name: str, expected: Any) -> Callable[[Mapping[str, Any]], bool]:
    def matches(row: Mapping[str, Any]) -> bool:
        if field_name not in row:
            return False
        return same_value(row[field_name], expected)

    return matches


def same_value(value: Any, expected: Any) -> bool:
    """Equality that tolerates text from CSV files: ``"false" == False``, ``"3" == 3``."""
    if isinstance(value, bool) or isinstance(expected, bool):
        if isinstance(value, str):
            return value.strip().lower() == str(expected).lower()
        return value is expected or (isinstance(value, bool) and isinstance(expected, bool) and value == expected)
    if value == expected:
        return True
    if isinstance(value, str) and isinstance(expected, (int, float)):
        try:
            return float(value) == float(expected)
        except ValueError:
            return False
    if isinstance(expected, str) and isinstance(value, (int, float)):
        return str(value) == expected
    return False


# -- lineage and agreement -------------------------------------------------------------------------

def lineage(sources: Sequence[Any], name: str) -> tuple[str, int, list[str]]:
    """(provenance, depth of model-written copies, generators along the chain) of a source.

    Whether each generator graduated in the domain is looked up when deciding, never declared here.
    """

    by_name = {s.name: s for s in sources}
    if name not in by_name:
        raise InputError(f"no ground truth source named {name!r} (have: {sorted(by_name)})")
    depth = lineage_depths(list(sources))[name]
    ungraduated: list[str] = []
    current = by_name[name]
    seen = set()
    while current is not None and current.name not in seen:
        seen.add(current.name)
        if current.generated_by is not None:
            ungraduated.append(current.generated_by.model)
        current = by_name.get(current.derived_from) if current.derived_from else None
    return current_provenance(by_name[name]), depth, ungraduated


def current_provenance(source: Any) -> str:
    value = source.provenance
    return getattr(value, "value", value)


def agreement(items: Iterable[AuditItem]) -> float | None:
    """Fraction of items on which the verifiers and the person agree (verifier ``error`` counts as fail)."""
    judged = [(i.verdict == "pass", i.verifier_verdict == "pass") for i in items if i.verifier_verdict is not None]
    if not judged:
        return None
    return sum(a == b for a, b in judged) / len(judged)


# -- the tally -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifierInfo:
    name: str
    role: str
    kind: str
    version: str = "1"


@dataclass(slots=True)
class PromptTally:
    """One prompt's samples: how many, how many passed, whether their labels differ, and the first label's hash."""

    samples: int
    passes: int
    flipped: bool
    label: int

    def absorb(self, samples: int, passes: int, flipped: bool, label: int) -> None:
        """Add the samples of the same prompt counted elsewhere (a part of the same scan)."""
        self.samples += samples
        self.passes += passes
        self.flipped = self.flipped or flipped or self.label != label


@dataclass(frozen=True, slots=True)
class PackedTallies:
    """Per-prompt tallies as they travel between processes (forked parts of a scan, Ray actors): five columns
    of machine integers instead of one object per prompt. Tuned form, kept because the benchmark showed a loss:
    sending ``PromptTally`` objects made a forked 200,000-row scan 15% slower per CPU-second and the Ray engine
    28% slower (``benchmarks/verifiers.py``, ``benchmarks/ray_engine.py``), unpickling one object per prompt."""

    keys: bytes
    samples: bytes
    passes: bytes
    flipped: bytes
    labels: bytes

    @classmethod
    def pack(cls, groups: Mapping[int, PromptTally]) -> "PackedTallies":
        values = groups.values()
        return cls(array("q", groups.keys()).tobytes(), array("q", (g.samples for g in values)).tobytes(),
                   array("q", (g.passes for g in values)).tobytes(), bytes(g.flipped for g in values),
                   array("q", (g.label for g in values)).tobytes())

    def unpack(self) -> Iterable[tuple[int, int, int, bool, int]]:
        """(prompt key, samples, passes, flipped, label hash) per prompt."""
        columns = [array("q") for _ in range(4)]
        for column, data in zip(columns, (self.keys, self.samples, self.passes, self.labels)):
            column.frombytes(data)
        keys, samples, passes, labels = columns
        return zip(keys, samples, passes, (bool(b) for b in self.flipped), labels)


MAX_FAILING_EXAMPLES = 5


class Tally:
    """Accumulates verdicts row by row (``add``) or chunk by chunk (``add_batch``); records come at the end.

    Consistency needs k samples per prompt. Samples of a prompt are expected among its first
    ``max_single_prompts`` distinct prompts: when that many prompts have each been seen once, the outputs
    hold one sample per prompt, tracking stops, and memory stays flat on huge single-sample files.
    """

    max_single_prompts = 100_000

    def __init__(self, verifiers: Sequence[VerifierInfo], slices: Sequence[Slice] = (),
                 symbols: SymbolScanner | None = None, consistency: bool = True, per_prompt: bool = False) -> None:
        self.verifiers = list(verifiers)
        # per_prompt: every row's key is a registered prompt (a bounded set), so groups are kept for all of
        # them and the record's bound is over distinct prompts (``prompt_bound``)
        self.per_prompt = per_prompt
        self.substance = [i for i, v in enumerate(self.verifiers) if v.role == "substance"]
        self.format = [i for i, v in enumerate(self.verifiers) if v.role == "format"]
        self.slices = list(slices)
        self.symbols = symbols
        self.track_consistency = consistency
        self.n = 0
        self.passed = 0
        self.format_passed = 0
        self.errors = 0
        # per verifier: [pass, fail, error]
        self.per_verifier = [[0, 0, 0] for _ in self.verifiers]
        # per slice: [n, substance pass, format pass]
        self.per_slice = [[0, 0, 0] for _ in self.slices]
        self._groups: dict[int, PromptTally] = {}  # by the hash of the prompt key
        self._repeats = False
        self.failing: list[str] = []  # file:line of the first few items that did not pass
        self.skipped = 0  # rows the caller left out on purpose (not counted, not verified)

    def fresh(self) -> "Tally":
        """An empty tally with the same verifiers, slices and symbol settings."""
        symbols = None
        if self.symbols is not None:
            symbols = SymbolScanner(self.symbols.supported, self.symbols.min_rate, self.symbols.min_rows,
                                    self.symbols.max_examples, self.symbols.capacity,
                                    template_rate=self.symbols.template_rate,
                                    label_sample=self.symbols.label_sample)
        return Tally(self.verifiers, self.slices, symbols, self.track_consistency, self.per_prompt)

    def add(self, row: Mapping[str, Any] | None, verdicts: Sequence[Any], *, prompt_key: Any = None,
            label: Any = None, symbol_text: str | None = None, where: str = "") -> bool:
        """Count one item; returns whether it passed (every substance verifier passed)."""
        self.n += 1
        any_error = False
        for counts, verdict in zip(self.per_verifier, verdicts):
            v = verdict[0]
            if v == "pass":
                counts[0] += 1
            elif v == "fail":
                counts[1] += 1
            else:
                counts[2] += 1
                any_error = True
        if any_error:
            self.errors += 1
        ok = bool(self.substance) and all(verdicts[i][0] == "pass" for i in self.substance)
        fmt_ok = bool(self.format) and all(verdicts[i][0] == "pass" for i in self.format)
        self.passed += ok
        self.format_passed += fmt_ok
        if not ok and len(self.failing) < MAX_FAILING_EXAMPLES and where:
            self.failing.append(where_text(where))
        if self.slices and row is not None:
            for counts, sl in zip(self.per_slice, self.slices):
                if sl.matches(row):
                    counts[0] += 1
                    counts[1] += ok
                    counts[2] += fmt_ok
        if self.symbols is not None and symbol_text is not None:
            self.symbols.add(symbol_text, where)
        if self.track_consistency and prompt_key is not None:
            self._group(prompt_key, ok, label)
        return ok

    def add_batch(self, rows: Sequence[Mapping[str, Any] | None], columns: Sequence[Sequence[Any]], *,
                  prompt_keys: Sequence[Any] | None = None, labels: Sequence[Any] | None = None,
                  symbol_texts: Sequence[str | None] | None = None, wheres: Sequence[Any] | None = None
                  ) -> list[bool]:
        """Count many items at once: ``columns[j][i]`` is verifier j's verdict on item i. The hot loop of a
        scan; the same counts as calling ``add`` per item."""
        count = len(rows)
        if not count:
            return []
        self.n += count
        codes = [[v[0] for v in column] for column in columns]
        any_error = False
        for counts, column in zip(self.per_verifier, codes):
            passes, fails = column.count("pass"), column.count("fail")
            counts[0] += passes
            counts[1] += fails
            counts[2] += count - passes - fails
            any_error = any_error or passes + fails < count
        if any_error:
            self.errors += sum(1 for item in zip(*codes) if "error" in item)
        if self.substance:
            ok = [c == "pass" for c in codes[self.substance[0]]]
            for j in self.substance[1:]:
                ok = [a and c == "pass" for a, c in zip(ok, codes[j])]
        else:
            ok = [False] * count
        if self.format:
            fmt = [c == "pass" for c in codes[self.format[0]]]
            for j in self.format[1:]:
                fmt = [a and c == "pass" for a, c in zip(fmt, codes[j])]
        else:
            fmt = [False] * count
        self.passed += sum(ok)
        self.format_passed += sum(fmt)
        if len(self.failing) < MAX_FAILING_EXAMPLES and wheres is not None and not all(ok):
            for a, where in zip(ok, wheres):
                if not a and where:
                    self.failing.append(where_text(where))
                    if len(self.failing) >= MAX_FAILING_EXAMPLES:
                        break
        if self.slices:
            for counts, sl in zip(self.per_slice, self.slices):
                for row, a, b in zip(rows, ok, fmt):
                    if row is not None and sl.matches(row):
                        counts[0] += 1
                        counts[1] += a
                        counts[2] += b
        if self.symbols is not None and symbol_texts is not None:
            add = self.symbols.add
            for text, where in zip(symbol_texts, wheres or [""] * count):
                add(text, where)
        if self.track_consistency and prompt_keys is not None:
            group = self._group
            for key, a, label in zip(prompt_keys, ok, labels or [None] * count):
                if key is not None:
                    group(key, a, label)
        return ok

    def _group(self, prompt_key: Any, ok: bool, label: Any) -> None:
        key = hash(prompt_key)
        found = self._groups.get(key)
        if found is None:
            if not self._repeats and not self.per_prompt and len(self._groups) >= self.max_single_prompts:
                self.track_consistency = False  # every prompt once so far: no samples to compare
                self._groups = {}
                return
            self._groups[key] = PromptTally(1, int(ok), False, hash(label))
            return
        self._repeats = True
        found.samples += 1
        found.passes += ok
        if not found.flipped and found.label != hash(label):
            found.flipped = True  # labels differ; verdict flips are read off the counts at the end

    # -- merging (a scan split across processes) --
    def state(self) -> dict[str, Any]:
        """Everything counted so far, as plain data (picklable), for ``merge`` in another process."""
        symbols = None
        if self.symbols is not None:
            symbols = (self.symbols.rows, dict(self.symbols.counts), self.symbols.examples, self.symbols.spelled,
                       self.symbols.slack, list(self.symbols.label_rows))
        return {"n": self.n, "passed": self.passed, "format_passed": self.format_passed, "errors": self.errors,
                "per_verifier": self.per_verifier, "per_slice": self.per_slice,
                "groups": PackedTallies.pack(self._groups),
                "repeats": self._repeats, "tracking": self.track_consistency, "symbols": symbols,
                "failing": self.failing, "per_prompt": self.per_prompt, "skipped": self.skipped}

    def merge(self, state: Mapping[str, Any]) -> None:
        """Add the counts of another tally of the same verifiers and slices (rows that came after ours)."""
        if state.get("per_prompt", self.per_prompt) != self.per_prompt:
            raise ValueError("a part counted per prompt and a part counted per sample cannot be merged")
        self.n += state["n"]
        self.skipped += state.get("skipped", 0)
        self.passed += state["passed"]
        self.format_passed += state["format_passed"]
        self.errors += state["errors"]
        self.failing += state.get("failing", [])[:max(0, MAX_FAILING_EXAMPLES - len(self.failing))]
        for mine, theirs in zip(self.per_verifier + self.per_slice, state["per_verifier"] + state["per_slice"]):
            for i, value in enumerate(theirs):
                mine[i] += value
        if not state.get("tracking", True):
            self.track_consistency = False  # one part saw every prompt once: no consistency for the whole
            self._groups = {}
        groups = self._groups
        self._repeats = self._repeats or state.get("repeats", False)
        for key, samples, passes, flipped, label in (state["groups"].unpack() if self.track_consistency else ()):
            mine = groups.get(key)
            if mine is None:
                groups[key] = PromptTally(samples, passes, flipped, label)
            else:
                mine.absorb(samples, passes, flipped, label)
        if self.symbols is not None and state["symbols"] is not None:
            self.symbols.merge(*state["symbols"])

    # -- summaries --
    def verifier_stats(self) -> list[VerifierStats]:
        out = []
        for info, (p, f, e) in zip(self.verifiers, self.per_verifier):
            total = p + f + e
            out.append(VerifierStats(name=info.name, role=info.role, kind=info.kind, version=info.version,
                                     total=total, passed=p, failed=f, errors=e, pass_rate=rate(p, total)))
        return out

    def slice_stats(self) -> list[SliceStats]:
        out = []
        for sl, (n, sub, fmt) in zip(self.slices, self.per_slice):
            out.append(SliceStats(name=sl.name, n=n, passed=sub, pass_rate=rate(sub, n),
                                  wilson_lower=wilson_lower(sub, n), substance_pass_rate=rate(sub, n),
                                  format_pass_rate=rate(fmt, n)))
        return out

    def consistency(self) -> Consistency | None:
        groups = [g for g in self._groups.values() if g.samples >= 2]
        if not groups:
            return None
        sizes = Counter(g.samples for g in groups)
        k = sizes.most_common(1)[0][0]
        pass_at_1 = sum(g.passes / g.samples for g in groups) / len(groups)
        all_k = sum(g.passes == g.samples for g in groups) / len(groups)
        flips = sum(1 for g in groups if g.flipped or 0 < g.passes < g.samples) / len(groups)
        return Consistency(k=k, prompts=len(groups), pass_at_1=pass_at_1, pass_all_k=all_k, flip_rate=flips)

    @property
    def substance_pass_rate(self) -> float:
        return rate(self.passed, self.n)

    @property
    def format_pass_rate(self) -> float:
        return rate(self.format_passed, self.n) if self.format else 0.0

    @property
    def shape_gap(self) -> float:
        return shape_gap(self.format_pass_rate, self.substance_pass_rate, bool(self.format))

    def prompt_rates(self) -> list[float]:
        """Per distinct prompt, the fraction of its samples that passed."""
        return [g.passes / g.samples for g in self._groups.values() if g.samples]

    def eval_record(self, *, model: str, round: int | None = None, outputs_file: str | None = None,
                    job: str | None = None, step: int | None = None, **extra: Any) -> EvalRecord:
        if self.per_prompt:
            rates = self.prompt_rates()
            prompt_rate, bound = prompt_bound(rates)
            extra = {"prompts": len(rates), "prompt_pass_rate": min(1.0, prompt_rate), **extra}
        else:
            bound = wilson_lower(self.passed, self.n)
        return EvalRecord(
            model=model, round=round, outputs_file=outputs_file, n=self.n, passed=self.passed, errors=self.errors,
            pass_rate=self.substance_pass_rate, wilson_lower=bound, **extra,
            substance_pass_rate=self.substance_pass_rate, format_pass_rate=self.format_pass_rate,
            shape_gap=self.shape_gap, verifiers=self.verifier_stats(), slices=self.slice_stats(),
            symbols=self.symbols.flags() if self.symbols is not None else [],
            consistency=self.consistency(), job=job, step=step, failing_examples=list(self.failing))

    def audit_record(self, *, file: str, provenance: str = "unknown", lineage_depth: int = 0,
                     ungraduated_generators: Sequence[str] = (), malformed_rows: int = 0) -> DataAuditRecord:
        failed = self.n - self.passed if self.substance else 0
        return DataAuditRecord(
            file=file, rows=self.n, substance_failed=failed, substance_fail_rate=rate(failed, self.n),
            format_pass_rate=self.format_pass_rate, shape_gap=self.shape_gap, errors=self.errors,
            malformed_rows=malformed_rows, symbols=self.symbols.flags() if self.symbols is not None else [],
            provenance=provenance, lineage_depth=lineage_depth,
            ungraduated_generators=list(ungraduated_generators), slices=self.slice_stats())


__all__ = ["Slice", "SymbolScanner", "Tally", "VerifierInfo", "Z95", "agreement", "compile_slices", "lineage",
           "prompt_bound", "rate", "same_value", "shape_gap", "symbols_in", "text_of_value", "vocabulary_of",
           "wilson_interval", "wilson_lower"]
