"""Crystallisation: sample answers from a trained checkpoint, verify them, keep only those every verifier passes
(the SFT set an approved GRPO run hands on). Imports torch through the runner."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graduation.training.rewards import VerifierReward
from graduation.training.runner import answer_rows, load_model


@dataclass
class Crystallised:
    rows: list[dict[str, Any]]
    sampled: int
    verified: int
    kept: int
    seconds: float
    verify_seconds: float

    @property
    def verified_per_second(self) -> float:
        return self.verified / self.seconds if self.seconds > 0 else 0.0


def crystallise(model_path: str | Path, rows: Sequence[Mapping[str, Any]], verifiers: Sequence[Any], *,
                prompt_field: str, answer_field: str, id_field: str | None = None, samples: int = 4,
                temperature: float = 1.0, max_new_tokens: int = 64, lineage: Mapping[str, Any] | None = None,
                pool: Any = None, seed: int = 0) -> Crystallised:
    """Sample answers from a trained checkpoint, verify them, keep only those every verifier passes.

    Each kept row: ``{prompt, completion, answer, id?, lineage}`` where lineage names the source checkpoint
    (and job), the verifiers with their versions, and whatever the caller adds (the decision id).
    Duplicate (prompt, completion) pairs are kept once.
    """
    started = time.perf_counter()
    model, tokenizer = load_model(str(model_path))
    answered = answer_rows(model, tokenizer, rows, prompt_field=prompt_field, answer_field=answer_field,
                           id_field=id_field, samples=samples, temperature=temperature,
                           max_new_tokens=max_new_tokens, seed=seed)
    verify_started = time.perf_counter()
    verify = (lambda v, items: pool.verify(v, items)) if pool is not None else None
    passed = [True] * len(answered)
    for verifier in verifiers:
        reward = VerifierReward(verifier, answer_field, verify)
        reward([a[prompt_field] for a in answered], [a["output"] for a in answered],
               **{answer_field: [a[answer_field] for a in answered]})
        passed = [p and v.verdict == "pass" for p, v in zip(passed, reward.last_verdicts)]
    verify_seconds = time.perf_counter() - verify_started
    base_lineage = {"source": {"kind": "checkpoint", "checkpoint": str(model_path)},
                    "verifiers": [{"name": v.name, "kind": v.kind, "role": v.role, "version": v.version}
                                  for v in verifiers]}
    for key, value in (lineage or {}).items():
        if key == "source":
            base_lineage["source"] = {**base_lineage["source"], **value}
        else:
            base_lineage[key] = value
    kept: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for item, ok in zip(answered, passed):
        key = (json.dumps(item[prompt_field], sort_keys=True), item["output"])
        if not ok or key in seen:
            continue
        seen.add(key)
        row = {prompt_field: item[prompt_field], "completion": item["output"], answer_field: item[answer_field],
               "lineage": base_lineage}
        if id_field and id_field in item:
            row[id_field] = item[id_field]
        if "source_prompt" in item:
            row["source_prompt"] = item["source_prompt"]
        kept.append(row)
    return Crystallised(kept, len(answered), len(answered) * len(verifiers), len(kept),
                        time.perf_counter() - started, verify_seconds)


__all__ = ["Crystallised", "crystallise"]
