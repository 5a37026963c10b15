"""Held-out prompts that also occur in training data (they never count), for a registered or a loaded domain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graduation.evidence import text_of_value
from graduation.heldout import Overlap, overlap
from graduation.service.context import DomainContext, ground_truth_rows, row_key
from graduation.spec import DomainSpec


def heldout_overlap(ctx: DomainContext):
    """Registered eval prompts (by canonical key) that also occur in the domain's training sources.

    Eval prompts come from the sources of split eval or all; training prompts from every *other* source of
    split train, and of split all when the domain declares a split-eval source. A domain with no split-eval
    source declares its split-all sources both training and held-out data: they are not compared with
    each other (declare ``split: eval`` to hold prompts out).
    """

    prompt = ctx.spec.task.prompt_field
    evals: dict[str, str] = {}
    owner: dict[str, str] = {}
    by_source: dict[str, list[str]] = {}
    has_eval = any(s.split == "eval" for s in ctx.spec.ground_truth)
    training = ("train", "all") if has_eval else ("train",)
    for source, _file, _line, row in ground_truth_rows(ctx):
        if prompt not in row:
            continue
        text = text_of_value(row[prompt])
        if source.split in training:
            by_source.setdefault(source.name, []).append(text)
        if source.split in ("eval", "all"):
            key = row_key(row, ctx.spec)
            if key is not None and key not in evals:
                evals[key] = text
                owner[key] = source.name
    found = Overlap(len(evals))
    for name, texts in by_source.items():
        found.merge(overlap({k: t for k, t in evals.items() if owner[k] != name}, texts))
    return found


def heldout_report(spec: DomainSpec, root: Path) -> dict[str, Any]:
    """Held-out overlap of a loaded (not necessarily registered) domain, for `validate` and `register`."""
    found = heldout_overlap(DomainContext(spec.domain, 0, "", spec, Path(root), []))
    return {"eval_prompts": found.eval_prompts, "overlapping": len(found.exact), "overlap_rate": found.rate,
            "ngram": found.n, "ngram_overlapping": len(found.ngram), "ngram_overlap_rate": found.ngram_rate,
            "examples": sorted(found.exact)[:10], "message": found.describe()}
