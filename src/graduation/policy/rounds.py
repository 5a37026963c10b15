"""One model's evaluation rounds in a domain, kept column by column (pure, no I/O).

A phase is decided over every round of a model (how many of the newest meet the bar, the earliest window
that did), so a status over many domains looks at hundreds of thousands of rounds. Kept as one object per
round, they cost more to build than to judge; kept as columns (``Rounds``), a round is judged by one
comprehension over plain numbers, and only the rounds a message names become a ``Round``
(``Rounds.at``). The registry stores these columns packed (``graduation.tally``) and decodes them
straight into a ``Rounds``; deciding from the records builds the same columns (``Rounds.append``).

Absent values are NaN in float columns (``pass_k``, ``flip_rate``, a slice a round has no evidence for): a
comparison with NaN is false, so an absent value never meets a bar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

NAN = math.nan
#: a round without slices (shared, read-only)
NO_SLICES: Any = MappingProxyType({})
#: bits of the ``present`` column: which optional values a round has
HAS_PASS_K, HAS_FLIP, HAS_K = 1, 2, 4


@dataclass(slots=True)
class Round:
    """One evaluation round, as the messages of a phase name it."""

    n: int
    passed: int
    wilson_lower: float
    shape_gap: float
    slices: dict[str, tuple[int, int, float]]  # name -> (n, passed, wilson_lower)
    pass_k: float | None
    flip_rate: float | None
    k: int | None
    number: int
    model: str | None = None
    generated: bool = False
    prompts: int = 0
    coverage: float = 0.0
    uncounted: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"round {self.number}" + (f" of {self.model}" if self.model else "")


class Rounds:
    """The rounds of one model (``model``: NAME@V) in one domain, oldest first, as columns.

    ``seq``: each round's position among every model's rounds of the domain (which model was evaluated
    last). ``slices``: slice name -> (n, passed, wilson_lower) columns, NaN where a round has no evidence
    for it. ``uncounted``: round index -> the untrustworthy or unvalidated verifiers that scored it.
    Columns are lists, or ``array`` slices when decoded from the registry; either indexes the same.
    """

    __slots__ = ("model", "n", "passed", "wilson_lower", "shape_gap", "pass_k", "flip_rate", "k", "number",
                 "generated", "prompts", "coverage", "present", "seq", "slices", "uncounted")

    def __init__(self, model: str | None) -> None:
        self.model = model
        self.n: Any = []
        self.passed: Any = []
        self.wilson_lower: Any = []
        self.shape_gap: Any = []
        self.pass_k: Any = []
        self.flip_rate: Any = []
        self.k: Any = []
        self.number: Any = []
        self.generated: Any = []
        self.prompts: Any = []
        self.coverage: Any = []
        self.present: Any = []
        self.seq: Any = []
        self.slices: dict[str, tuple[Any, Any, Any]] = {}
        self.uncounted: dict[int, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.n)

    def append(self, n: int, passed: int, wilson_lower: float, shape_gap: float, slices: dict | None,
               pass_k: float | None, flip_rate: float | None, k: int | None, number: int, generated: bool,
               prompts: int, coverage: float, uncounted: tuple[str, ...], seq: int) -> None:
        """Add the newest round (``slices``: name -> (n, passed, wilson_lower))."""
        index = len(self.n)
        self.n.append(n)
        self.passed.append(passed)
        self.wilson_lower.append(wilson_lower)
        self.shape_gap.append(shape_gap)
        self.pass_k.append(NAN if pass_k is None else pass_k)
        self.flip_rate.append(NAN if flip_rate is None else flip_rate)
        self.k.append(0 if k is None else k)
        self.number.append(number)
        self.generated.append(int(bool(generated)))
        self.prompts.append(prompts)
        self.coverage.append(coverage)
        self.present.append((pass_k is not None) | (flip_rate is not None) << 1 | (k is not None) << 2)
        self.seq.append(seq)
        for name, (sn, sp, sw) in (slices or {}).items():
            cols = self.slices.get(name)
            if cols is None:
                cols = self.slices[name] = ([NAN] * index, [NAN] * index, [NAN] * index)
            cols[0].append(sn)
            cols[1].append(sp)
            cols[2].append(sw)
        for name, cols in self.slices.items():
            if len(cols[0]) == index:  # no evidence for this slice in this round
                for col in cols:
                    col.append(NAN)
        if uncounted:
            self.uncounted[index] = tuple(uncounted)

    def at(self, i: int) -> Round:
        """Round ``i`` (negative from the newest) as a ``Round``."""
        if i < 0:
            i += len(self.n)
        present = self.present[i]
        slices = {name: (int(cols[0][i]), int(cols[1][i]), cols[2][i]) for name, cols in self.slices.items()
                  if cols[0][i] == cols[0][i]}  # NaN: no evidence for the slice in this round
        return Round(self.n[i], self.passed[i], self.wilson_lower[i], self.shape_gap[i], slices or NO_SLICES,
                     self.pass_k[i] if present & HAS_PASS_K else None,
                     self.flip_rate[i] if present & HAS_FLIP else None,
                     self.k[i] if present & HAS_K else None, self.number[i], self.model, bool(self.generated[i]),
                     self.prompts[i], self.coverage[i], self.uncounted.get(i, ()))

    def meets(self, t, slices) -> list[bool]:
        """Whether each round meets the bar of thresholds ``t`` (``graduation.policy.phase.round_unmet`` says
        why one does not): distinct prompts, coverage, Wilson bound, shape gap, every declared slice in
        ``slices`` on its own, pass^k when required, and scored by trustworthy verifiers only."""
        bar, least, cover, gap, need = t.min_wilson_lower, t.min_samples, t.min_coverage, t.max_shape_gap, t.min_pass_k
        if need > 0:  # one pass over the columns either way
            ok = [p >= least and c >= cover and w >= bar and g <= gap and k >= need
                  for p, c, w, g, k in zip(self.prompts, self.coverage, self.wilson_lower, self.shape_gap, self.pass_k)]
        else:
            ok = [p >= least and c >= cover and w >= bar and g <= gap
                  for p, c, w, g in zip(self.prompts, self.coverage, self.wilson_lower, self.shape_gap)]
        for name in slices:
            cols = self.slices.get(name)
            if cols is None:
                return [False] * len(ok)
            ok = [o and w >= bar for o, w in zip(ok, cols[2])]
        for i in self.uncounted:
            ok[i] = False
        return ok

    def meets_at(self, i: int, t, slices) -> bool:
        """``meets(t, slices)[i]``, for one round (negative from the newest)."""
        if i < 0:
            i += len(self.n)
        bar = t.min_wilson_lower
        if not (self.prompts[i] >= t.min_samples and self.coverage[i] >= t.min_coverage
                and self.wilson_lower[i] >= bar and self.shape_gap[i] <= t.max_shape_gap):
            return False
        for name in slices:
            cols = self.slices.get(name)
            if cols is None or not cols[2][i] >= bar:
                return False
        if t.min_pass_k > 0 and not self.pass_k[i] >= t.min_pass_k:
            return False
        return i not in self.uncounted


#: a model without rounds (shared: never appended to)
EMPTY = Rounds(None)

__all__ = ["EMPTY", "HAS_FLIP", "HAS_K", "HAS_PASS_K", "NAN", "NO_SLICES", "Round", "Rounds"]
