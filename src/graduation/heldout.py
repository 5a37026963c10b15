"""Held-out means held out: eval prompts that also occur in training sources (pure, no I/O).

    found = overlap(eval_prompts={"id:7": "What is 2+2?"}, train_prompts=["what is  2+2 ?", ...])
    found.exact           # {"id:7"}: the same prompt after normalising case and whitespace; never counted
    found.rate            # exact overlaps / eval prompts: the policy fact ``eval.overlap_rate``
    found.ngram_rate      # eval prompts sharing a 13-gram with training prompts: ``eval.ngram_overlap_rate``

Two measures, as benchmark decontamination does it:

* **exact**: the prompts are equal after normalising case and whitespace (``normalise``). Such a prompt is
  not held out: an evaluation never counts it.
* **n-gram**: the eval prompt shares at least one word ``N``-gram with a training prompt, with ``N = 13``
  and words lowercased with punctuation dropped, the rule lm-evaluation-harness's decontamination uses
  (open-instruct's scripts score n-gram matches against training data the same way). It is *reported*
  (``registry validate``/``register``, the evaluation record, the fact) but does not exclude prompts by
  itself: templated domain prompts share long n-grams by construction (every Hamiltonian prompt ends
  "Derive Hamilton's equations of motion. Answer in the form ..."), so a policy decides what rate it
  tolerates. A prompt shorter than ``N`` words has no n-gram and is judged by the exact rule only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

N = 13
_SPACE = re.compile(r"\s+")
_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Lowercase (casefold), whitespace collapsed to one space, trimmed."""
    return _SPACE.sub(" ", text).strip().casefold()


def ngrams(text: str, n: int = N) -> set[int]:
    """Hashes of the word n-grams of a text (lowercased words, punctuation dropped)."""
    words = _WORDS.findall(text.casefold())
    return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


@dataclass
class Overlap:
    """Eval prompts found in training sources: exactly, and by a shared n-gram."""

    eval_prompts: int
    exact: set[str] = field(default_factory=set)
    ngram: set[str] = field(default_factory=set)  # every prompt sharing an n-gram (exact ones included)
    n: int = N

    @property
    def keys(self) -> set[str]:
        """The prompts that are not held out (never counted): the exact overlaps."""
        return self.exact

    @property
    def rate(self) -> float:
        return len(self.exact) / self.eval_prompts if self.eval_prompts else 0.0

    @property
    def ngram_rate(self) -> float:
        return len(self.ngram) / self.eval_prompts if self.eval_prompts else 0.0

    def merge(self, other: "Overlap") -> None:
        self.exact |= other.exact
        self.ngram |= other.ngram

    def describe(self) -> str:
        return (f"{len(self.exact)} of {self.eval_prompts} eval prompts also occur in training sources (same text "
                f"after normalising case and whitespace): they never count as held-out evidence; "
                f"{len(self.ngram)} share a {self.n}-word n-gram with a training prompt "
                f"(n-gram overlap rate {self.ngram_rate:.0%})")


def overlap(eval_prompts: Mapping[str, str], train_prompts: Iterable[str], n: int = N) -> Overlap:
    """Which eval prompts (key -> text) overlap the training prompts."""
    exact_train: set[str] = set()
    grams: set[int] = set()
    for text in train_prompts:
        exact_train.add(normalise(text))
        grams |= ngrams(text, n)
    found = Overlap(len(eval_prompts), n=n)
    for key, text in eval_prompts.items():
        if normalise(text) in exact_train:
            found.exact.add(key)
            found.ngram.add(key)
        elif grams and not grams.isdisjoint(ngrams(text, n)):
            found.ngram.add(key)
    return found


__all__ = ["N", "Overlap", "ngrams", "normalise", "overlap"]
