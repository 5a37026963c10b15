"""Unsupported recurrent symbols: identifiers that recur in outputs or data but never occur in trusted ground
truth (a hallucinated ``golden_hour_sun`` parameter), counted in bounded memory. Pure, no I/O.

    scanner = SymbolScanner(vocabulary_of(trusted_rows))
    for text, where in rows: scanner.add(text, where)
    flags = scanner.flags()          # SymbolFlag per symbol over the threshold, with examples
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graduation.records import SymbolFlag

# Identifier shapes that ordinary prose does not produce: snake_case, camelCase, letters mixed with digits.
_SYMBOL = re.compile(
    r"(?<![A-Za-z0-9_])(?:"
    r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+"     # golden_hour_sun, k_max, x_1
    r"|[a-z]+(?:[A-Z][a-z0-9]+)+"                 # goldenHourSun
    r"|[A-Za-z]{2,}[0-9]+[A-Za-z0-9]*"            # zeta9, abc123x
    r")(?![A-Za-z0-9_])")
# A plain word used as a quantity: between arithmetic operators (``2*zorblax*p``, ``= kappa + 1``), where
# prose does not put words. Function names (``sin(``) are followed by a bracket, so they do not match.
_OPERAND = re.compile(r"[*/^=+\-(]\s*([A-Za-z]{3,})(?![A-Za-z0-9_(])(?=\s*(?:[*/^+\-),=]|$))")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The label an answer opens with: ``$d_i = 12$``, ``\(x_1 = 3\)``, ``k_max: 4``.
_LABEL = re.compile(r"[\s$\\(\[{]*([A-Za-z][A-Za-z0-9_]*)\s*[=:](?![=:])")


def _candidates(text: str) -> list[str]:
    found = _SYMBOL.findall(text)
    if "*" in text or "=" in text or "^" in text:
        found += _OPERAND.findall(text)
    return found


def symbols_in(text: str) -> set[str]:
    """Candidate invented identifiers in a text (lowercased)."""
    if not text:
        return set()
    return {m.lower() for m in _candidates(text)}


def vocabulary_of(values: Iterable[Any]) -> set[str]:
    """Every identifier-like token (lowercased) in trusted ground truth values, keys included."""
    vocab: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            vocab.update(t.lower() for t in _WORD.findall(value))
            vocab.update(symbols_in(value))
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    return vocab


def text_of_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


@dataclass
class SymbolScanner:
    """Counts, per row, identifiers absent from the trusted vocabulary; reports those that recur.

    A symbol is flagged when it appears in at least ``max(min_rows, min_rate * rows)`` rows.

    Memory is bounded whatever the file size: counts live in a Misra-Gries summary of at most ``capacity``
    tokens (with a few example locations each). While fewer distinct tokens than that were seen, the counts
    are exact. When the summary overflows, each prune subtracts the same amount ``slack`` from every count,
    so every true count lies in ``[count, count + slack]`` and a token that was dropped occurred in at most
    ``slack`` rows. ``needs_recount`` is then true: the caller reads the rows a second time and hands their
    texts to ``recount``, which counts the candidates (tokens whose upper bound reaches the threshold)
    exactly, with their first examples. ``slack`` is at most ``2 * occurrences / capacity``, so with the
    default capacity no token recurring in 2% of rows is missed unless rows carry, on average, more than
    about 650 distinct unsupported tokens each (``complete`` says whether that bound held).

    Template labels are not flagged: a token in at least ``template_rate`` of all rows that, in at least
    ``template_rate`` of the first ``label_sample`` rows, is the label an answer opens with (``$d_i = 12$``,
    ``x_1: 3``). A format that every answer shares is not an invention; an invented parameter inside the
    answers is still flagged at any rate. Identifiers from a row's own prompt are removed by the caller before
    ``add`` (``graduation.service.scan.without_prompt_symbols``); declared ``allowed_symbols`` join ``supported``.
    The first ``label_sample`` rows' labels are kept in order (``label_rows``, bounded), so that parts merged
    in file order sample exactly the rows one scan would.
    """

    supported: set[str]
    min_rate: float = 0.02
    min_rows: int = 3
    max_examples: int = 5
    capacity: int = 65536
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[Any]] = field(default_factory=dict)
    spelled: dict[str, str] = field(default_factory=dict)
    slack: int = 0
    recounted: bool = False
    template_rate: float = 0.9
    label_sample: int = 2000
    labels: Counter = field(default_factory=Counter)
    label_rows: list = field(default_factory=list)

    def add(self, text: str, where: Any) -> None:
        """Count one row's text; ``where`` (a label, or a (file, line) pair) is kept for a few examples."""
        self.rows += 1
        if not text:
            if self.rows <= self.label_sample:
                self._label(None)
            return
        if self.rows <= self.label_sample:
            label = _LABEL.match(text)
            self._label(label.group(1).lower() if label is not None else None)
        found = _candidates(text)
        if not found:
            return
        seen = set()
        counts, examples, supported = self.counts, self.examples, self.supported
        for raw in found:
            token = raw.lower()
            if token in seen or token in supported:
                continue
            seen.add(token)
            n = counts.get(token)
            if n is None:
                counts[token] = 1
                examples[token] = [where]
                self.spelled[token] = raw
            else:
                counts[token] = n + 1
                kept = examples[token]
                if len(kept) < self.max_examples:
                    kept.append(where)
        if len(counts) > self.capacity:
            self._prune()

    def _label(self, label: str | None) -> None:
        self.label_rows.append(label)
        if label is not None:
            self.labels[label] += 1

    def _prune(self) -> None:
        """Subtract the count of the (capacity/2)-th most frequent token from every count; drop the zeros."""
        import heapq

        keep = max(1, self.capacity // 2)
        cut = heapq.nlargest(keep + 1, self.counts.values())[-1]
        self.slack += cut
        counts = {t: n - cut for t, n in self.counts.items() if n > cut}
        self.examples = {t: self.examples[t] for t in counts}
        self.spelled = {t: self.spelled[t] for t in counts}
        self.counts = counts

    def threshold(self) -> int:
        return max(self.min_rows, math.ceil(self.min_rate * self.rows))

    @property
    def needs_recount(self) -> bool:
        return self.slack > 0 and not self.recounted

    @property
    def complete(self) -> bool:
        """Whether no token that reaches the threshold can have been dropped from the summary."""
        return self.slack < self.threshold()

    def candidates(self) -> set[str]:
        """Tokens whose true count may reach the threshold (all of them when the counts are exact)."""
        threshold = self.threshold()
        return {t for t, n in self.counts.items() if n + self.slack >= threshold}

    def recount(self, texts: Iterable[tuple[str, Any]]) -> None:
        """Count the candidates exactly over the same rows again: ``texts`` yields (text, where) per row."""
        wanted = self.candidates()
        counts = dict.fromkeys(wanted, 0)
        examples: dict[str, list[Any]] = {t: [] for t in wanted}
        supported = self.supported
        for text, where in texts:
            if not text:
                continue
            seen = set()
            for raw in _candidates(text):
                token = raw.lower()
                if token in seen or token not in counts or token in supported:
                    continue
                seen.add(token)
                counts[token] += 1
                if len(examples[token]) < self.max_examples:
                    examples[token].append(where)
        self.counts = counts
        self.examples = examples
        self.spelled = {t: self.spelled.get(t, t) for t in counts}
        self.recounted = True

    def merge(self, rows: int, counts: Mapping[str, int], examples: Mapping[str, list[Any]],
              spelled: Mapping[str, str], slack: int = 0, label_rows: Sequence[str | None] = ()) -> None:
        """Add another scanner's summary (rows that came after ours); bounds stay sound (slacks add up).

        Labels are sampled from the first ``label_sample`` rows of the whole: a later part's labels fill
        what room is left, in order, as one scan would have.
        """
        room = max(0, self.label_sample - len(self.label_rows))
        for label in list(label_rows)[:room]:
            self._label(label)
        self.rows += rows
        self.slack += slack
        for token, n in counts.items():
            self.counts[token] = self.counts.get(token, 0) + n
            mine = self.examples.setdefault(token, [])
            mine.extend(examples.get(token, [])[:max(0, self.max_examples - len(mine))])
            self.spelled.setdefault(token, spelled.get(token, token))
        while len(self.counts) > self.capacity:
            self._prune()

    def is_template(self, token: str, rows: int) -> bool:
        """A label every answer opens with: in nearly every row, and opening nearly every sampled row."""
        sampled = min(self.rows, self.label_sample)
        return (rows >= self.template_rate * self.rows and sampled > 0
                and self.labels.get(token, 0) >= self.template_rate * sampled)

    def flags(self, limit: int = 20) -> list[SymbolFlag]:
        if not self.rows:
            return []
        threshold = self.threshold()
        # Without a recount the counts are lower bounds; flag on the upper bound, so that nothing that may
        # recur is let through (a gate that errs, errs towards "no"). A template label is judged on the lower
        # bound, for the same reason.
        extra = self.slack if self.needs_recount else 0
        found = [(token, min(n + extra, self.rows)) for token, n in self.counts.items()
                 if n + extra >= threshold and not self.is_template(token, n)]
        found.sort(key=lambda item: (-item[1], item[0]))
        return [SymbolFlag(symbol=self.spelled.get(token, token), rows=n, rate=n / self.rows,
                           examples=[where_text(w) for w in self.examples.get(token, [])])
                for token, n in found[:limit]]


def where_text(where: Any) -> str:
    return f"{where[0]}:{where[1]}" if isinstance(where, tuple) else str(where)


__all__ = ["SymbolScanner", "symbols_in", "text_of_value", "vocabulary_of", "where_text"]
