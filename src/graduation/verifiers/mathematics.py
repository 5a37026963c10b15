"""``math``: symbolic equivalence with math-verify (parse the answer out of the output, compare to the reference).

Always isolated: math-verify hands LaTeX to sympy, and some inputs make sympy run for ever or exhaust memory.
Inside a pool worker math-verify's own signal-based timeouts are switched off (they would cancel the worker's
timer); the worker's soft timer and the pool's hard kill bound every call from outside. Called in-process
(outside a worker), math-verify's own timeouts stay on. Outputs are handed to math-verify's extractors as
text; nothing here evaluates or sympifies them.
"""

from __future__ import annotations

from typing import Any

from graduation.verifiers import runtime
from graduation.verifiers.base import Check, Verdict, reference_text, text_of, verifier


@verifier("math")
def math(*, float_rounding: int = 6, numeric_precision: int = 15, strict: bool = True,
         allow_set_relation_comp: bool = False, max_chars: int = 20_000) -> Check:
    """Pass when the output's final expression equals the reference symbolically or numerically."""
    import logging

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    limit = int(max_chars)
    gold_cache: dict[str, list] = {}

    def own_timeout() -> int | None:
        return None if runtime.IN_WORKER else 5

    def parse_gold(reference: Any) -> list:
        ref = reference_text(reference).strip()
        found = gold_cache.get(ref)
        if found is not None:
            return found
        attempts = [ref]
        if "$" not in ref and "\\boxed" not in ref:
            attempts.insert(0, f"${ref}$")
        gold: list = []
        for attempt in attempts:
            gold = parse(attempt, extraction_config=configs, parsing_timeout=own_timeout())
            if gold:
                break
        if len(gold_cache) < 1024:
            gold_cache[ref] = gold
        return gold

    def check(output: Any, reference: Any, row=None) -> Verdict:
        text, refused = text_of(output, limit=limit)
        if refused is not None:
            return refused
        gold = parse_gold(reference)
        if not gold:
            return Verdict.error(f"the reference {reference_text(reference)[:80]!r} cannot be parsed as math")
        pred = parse(text, extraction_config=configs, parsing_timeout=own_timeout())
        if not pred:
            return Verdict("fail", 0.0, None, "no mathematical answer found in the output")
        answer = pred[-1] if isinstance(pred[-1], str) else None
        ok = verify(gold, pred, float_rounding=int(float_rounding), numeric_precision=int(numeric_precision),
                    strict=bool(strict), allow_set_relation_comp=bool(allow_set_relation_comp),
                    timeout_seconds=own_timeout())
        return Verdict.of(bool(ok), answer=answer,
                          explanation=None if ok else f"not equivalent to {reference_text(reference)[:80]!r}")

    return check
