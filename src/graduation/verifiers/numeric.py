"""``numeric``: the output's number is within an absolute or relative tolerance of the reference."""

from __future__ import annotations

import math
import re
from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers.base import Check, Verdict, compile_extractor, text_of, verifier

# Bounded: no nested quantifiers, so Python's re runs in linear time on this pattern.
_NUMBER = re.compile(r"[-+]?(?:\d[\d,_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d{1,4})?")
_MAX_NUMBER_CHARS = 400


def parse_number(text: str) -> float | None:
    """A number written plainly (``-1,234.5``, ``3e-4``, ``1/4``, ``45%``); ``None`` if it is not one."""
    text = text.strip().rstrip(".").strip()
    if not text or len(text) > _MAX_NUMBER_CHARS:
        return None
    percent = text.endswith("%")
    if percent:
        text = text[:-1].strip()
    if text.count("/") == 1:
        num, den = text.split("/")
        a, b = parse_number(num), parse_number(den)
        if a is None or b is None or b == 0:
            return None
        value = a / b
    else:
        if not _NUMBER.fullmatch(text):
            return None
        try:
            value = float(text.replace(",", "").replace("_", ""))
        except ValueError:
            return None
    if not math.isfinite(value):
        return None
    return value / 100 if percent else value


def last_number(text: str) -> str | None:
    found = None
    for found in _NUMBER.finditer(text):
        pass
    return found.group(0) if found else None


@verifier("numeric", isolated=False)
def numeric(*, abs_tol: float = 1e-6, rel_tol: float = 1e-9, extract: str | None = None,
            last_number_fallback: bool = True, max_chars: int = 1_000_000) -> Check:
    """Pass when |output - reference| <= max(abs_tol, rel_tol * |reference|).

    The output's number is the whole (stripped) output; else the last match of ``extract`` (an re2 pattern);
    else, with ``last_number_fallback``, the last number written in the output.
    """
    abs_tol, rel_tol = float(abs_tol), float(rel_tol)
    if abs_tol < 0 or rel_tol < 0:
        raise VerifierError(f"tolerances must be >= 0, got abs_tol={abs_tol!r}, rel_tol={rel_tol!r}")
    extractor = compile_extractor(extract)
    limit = int(max_chars)

    def check(output: Any, reference: Any, row=None) -> Verdict:
        if isinstance(reference, bool) or reference is None:
            return Verdict.error(f"reference {reference!r} is not a number")
        want = float(reference) if isinstance(reference, (int, float)) else parse_number(str(reference))
        if want is None:
            return Verdict.error(f"reference {str(reference)[:80]!r} is not a number")
        if isinstance(output, (int, float)) and not isinstance(output, bool):
            candidate: str | None = repr(output)
        else:
            text, refused = text_of(output, limit=limit)
            if refused is not None:
                return refused
            candidate = text.strip()
            if parse_number(candidate) is None:
                candidate = extractor(text) if extractor is not None else None
                if candidate is None and last_number_fallback:
                    candidate = last_number(text)
        got = parse_number(candidate) if candidate is not None else None
        if got is None:
            return Verdict("fail", 0.0, None, "no number found in the output")
        ok = abs(got - want) <= max(abs_tol, rel_tol * abs(want))
        return Verdict("pass" if ok else "fail", 1.0 if ok else 0.0, candidate,
                       None if ok else f"{got!r} differs from {want!r} beyond tolerance")

    return check
