"""Held-out means held out: eval prompts that also occur in training sources (pure, no I/O).

    found = overlap(eval_prompts={"id:7": "What is 2+2?"}, train_prompts=["what is  2+2 ?", ...])
    found.keys            # {"id:7"}: never counted as held-out evidence
    found.rate            # overlapping / eval prompts: a policy fact (``eval.overlap_rate``)

Two tests, as decontamination is done for public benchmarks:

* **exact**: the prompts are equal after normalising case and whitespace (``normalise``);
* **n-gram**: the eval prompt shares any word ``N``-gram (``N = 13``, lm-evaluation-harness's default for
  its decontamination, over lowercased words with punctuation removed) with a training prompt. A prompt
  shorter than ``N`` words is tested by the exact rule only (every n-gram rule needs n words to hold).
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
    """Eval prompts found in training sources: by exact match, and by n-gram only."""

    eval_prompts: int
    exact: set[str] = field(default_factory=set)
    ngram: set[str] = field(default_factory=set)
    n: int = N

    @property
    def keys(self) -> set[str]:
        return self.exact | self.ngram

    @property
    def rate(self) -> float:
        return len(self.keys) / self.eval_prompts if self.eval_prompts else 0.0

    def describe(self) -> str:
        return (f"{len(self.keys)} of {self.eval_prompts} eval prompts also occur in training sources "
                f"({len(self.exact)} exact after normalising case and whitespace, {len(self.ngram)} more sharing a "
                f"{self.n}-word n-gram): they never count as held-out evidence")


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
        elif grams and not grams.isdisjoint(ngrams(text, n)):
            found.ngram.add(key)
    return found


__all__ = ["N", "Overlap", "ngrams", "normalise", "overlap"]
