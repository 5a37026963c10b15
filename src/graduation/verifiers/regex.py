"""``regex``: the output matches a pattern, with google-re2 (linear time: no catastrophic backtracking)."""

from __future__ import annotations

from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers.base import Check, Verdict, compile_re2, text_of, verifier


def _fast_matcher(full_match: bool):
    """Match/no-match straight from re2's compiled program, skipping the wrapper's span bookkeeping.

    The wrapper's ``search`` costs ~7 µs a call, the program's ``Match`` under 1 µs; when this re2 build does
    not expose them, ``None`` sends callers to the public API.
    """
    import re2

    anchor_type = getattr(re2, "_Anchor", None)
    if anchor_type is None or not hasattr(re2.compile("x"), "_regexp"):
        return None
    anchor = anchor_type.ANCHOR_BOTH if full_match else anchor_type.UNANCHORED
    null = (-1, -1)

    def matches(rx, text: str) -> bool:
        data = text.encode("utf-8")
        return rx._regexp.Match(anchor, data, 0, len(data))[0] != null

    matches.anchor = anchor
    return matches


@verifier("regex", isolated=False)
def regex(*, pattern: str, full_match: bool = False, case_sensitive: bool = True, strip: bool = False,
          max_chars: int = 1_000_000) -> Check:
    """Pass when ``pattern`` matches the output (anywhere, or all of it with ``full_match``).

    The pattern may use ``{reference}`` to stand for the escaped reference, e.g. ``Answer: {reference}$``.
    """
    import re2

    if not isinstance(pattern, str) or not pattern:
        raise VerifierError(f"option pattern must be a non-empty string, got {pattern!r}")
    options = re2.Options()
    options.case_sensitive = bool(case_sensitive)
    options.max_mem = 64 << 20
    uses_reference = "{reference}" in pattern
    if not uses_reference:
        compiled = compile_re2(pattern, options)
    else:
        compile_re2(pattern.replace("{reference}", "x"), options)
    per_reference: dict[str, Any] = {}
    limit = int(max_chars)

    def compiled_for(reference: Any):
        if not uses_reference:
            return compiled
        ref = "" if reference is None else str(reference)
        found = per_reference.get(ref)
        if found is None:
            found = re2.compile(pattern.replace("{reference}", re2.escape(ref)), options)
            if len(per_reference) < 4096:
                per_reference[ref] = found
        return found

    matcher = _fast_matcher(full_match)
    failed = Verdict("fail", 0.0, None, f"does not match {pattern[:80]!r}")
    passed = Verdict("pass", 1.0, None, None)

    def check(output: Any, reference: Any, row=None) -> Verdict:
        text, refused = text_of(output, limit=limit)
        if refused is not None:
            return refused
        if strip:
            text = text.strip()
        rx = compiled_for(reference)
        if matcher is not None:
            found = matcher(rx, text)
        else:
            found = (rx.fullmatch(text) if full_match else rx.search(text)) is not None
        return passed if found else failed

    if uses_reference or matcher is None:
        return check
    # The common case, one fixed pattern: the same steps with no call per step (the scan's hot loop).
    program = compiled._regexp
    anchor, null = matcher.anchor, (-1, -1)

    def check_fixed(output: Any, reference: Any, row=None) -> Verdict:
        if type(output) is str and len(output) <= limit and output.isascii():
            data = (output.strip() if strip else output).encode("ascii")
        else:
            text, refused = text_of(output, limit=limit)
            if refused is not None:
                return refused
            data = (text.strip() if strip else text).encode("utf-8")
        return passed if program.Match(anchor, data, 0, len(data))[0] != null else failed

    return check_fixed
