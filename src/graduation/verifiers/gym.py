"""``reasoning_gym``: score with a reasoning-gym task's own ``score_answer`` (any task can be a domain).

The reference row carries what the task's scorer needs: the answer (the domain's answer field) and, when the
task scores against more than the answer, the entry's ``metadata`` (as reasoning-gym's datasets write it).
The task is named by the ``dataset`` option or by the row's ``metadata.source_dataset``. A score at or above
``threshold`` (default 1.0: exactly what the task counts as correct) passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers.base import Check, Verdict, reference_text, text_of, verifier


@verifier("reasoning_gym")
def reasoning_gym(*, dataset: str | None = None, threshold: float = 1.0, config: dict | None = None,
                  question_field: str = "question", metadata_field: str = "metadata",
                  max_chars: int = 100_000) -> Check:
    """Score ``output`` with ``reasoning_gym``'s scorer for the entry built from the reference row."""
    import reasoning_gym  # noqa: F401  (importing it registers every task)
    from reasoning_gym.factory import DATASETS

    if dataset is not None and dataset not in DATASETS:
        import difflib

        close = difflib.get_close_matches(dataset, list(DATASETS), n=1)
        raise VerifierError(f"option dataset: reasoning-gym has no task {dataset!r}"
                            + (f" (did you mean {close[0]!r}?)" if close else ""))
    scorers: dict[str, Any] = {}
    threshold = float(threshold)

    def scorer(name: str):
        found = scorers.get(name)
        if found is None:
            if name not in DATASETS:
                raise VerifierError(f"reasoning-gym has no task {name!r}")
            cls, config_cls = DATASETS[name]
            kwargs = dict(config or {}) if name == dataset else {}
            kwargs.setdefault("size", 1)
            instance = cls(config=config_cls(**{k: v for k, v in kwargs.items()
                                                if k in config_cls.__dataclass_fields__}))
            found = scorers[name] = instance.score_answer
        return found

    def check(output: Any, reference: Any, row: Mapping[str, Any] | None = None) -> Verdict:
        text, refused = text_of(output, limit=int(max_chars))
        if refused is not None:
            return refused
        row = row or {}
        metadata = row.get(metadata_field)
        if isinstance(metadata, str):
            import json

            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = None
        metadata = dict(metadata) if isinstance(metadata, Mapping) else {}
        name = dataset or metadata.get("source_dataset")
        if not name:
            return Verdict.error("no reasoning-gym task: set options.dataset or give rows metadata.source_dataset")
        entry = {"question": row.get(question_field, ""), "answer": reference_text(reference),
                 "metadata": metadata}
        score = scorer(name)(text, entry)
        if score is None or not isinstance(score, (int, float)) or not math.isfinite(float(score)):
            return Verdict.error(f"the scorer of {name!r} returned {score!r}")
        score = float(score)
        ok = score >= threshold
        return Verdict.of(ok, score=score, answer=text[:200],
                          explanation=None if ok else f"{name} scored {score:g} (< {threshold:g})")

    return check
