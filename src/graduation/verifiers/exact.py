"""``exact``: the output equals the reference after normalisation (in-process: linear time, size-capped)."""

from __future__ import annotations

import string
import unicodedata
from typing import Any

from graduation.verifiers.base import Check, Verdict, compile_extractor, reference_text, text_of, verifier

_PUNCT = str.maketrans("", "", string.punctuation)


def normaliser(*, case_sensitive: bool, strip: bool, collapse_whitespace: bool, strip_punctuation: bool,
               unicode_nfkc: bool):
    def normalise(text: str) -> str:
        if unicode_nfkc and not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        if not case_sensitive:
            text = text.casefold()
        if strip_punctuation:
            text = text.translate(_PUNCT)
        if collapse_whitespace:
            text = " ".join(text.split())
        elif strip:
            text = text.strip()
        return text

    return normalise


@verifier("exact", isolated=False)
def exact(*, case_sensitive: bool = False, strip: bool = True, collapse_whitespace: bool = True,
          strip_punctuation: bool = False, unicode_nfkc: bool = True, extract: str | None = None,
          max_chars: int = 1_000_000) -> Check:
    """Normalised string equality. ``extract``: an re2 pattern whose (last) match holds the answer."""
    normalise = normaliser(case_sensitive=bool(case_sensitive), strip=bool(strip),
                           collapse_whitespace=bool(collapse_whitespace),
                           strip_punctuation=bool(strip_punctuation), unicode_nfkc=bool(unicode_nfkc))
    extractor = compile_extractor(extract)
    limit = int(max_chars)
    cache: dict[Any, str] = {}
    passed = Verdict("pass", 1.0, None, None)  # the output is the answer: no need to repeat it

    def check(output: Any, reference: Any, row=None) -> Verdict:
        text, refused = text_of(output, limit=limit)
        if refused is not None:
            return refused
        if extractor is not None:
            text = extractor(text)
            if text is None:
                return Verdict("fail", 0.0, None, "no answer found by the extract pattern")
        ref = reference if type(reference) is str else reference_text(reference)
        if text == ref and ref:
            return passed if extractor is None else Verdict("pass", 1.0, text[:200], None)
        want = cache.get(ref)
        if want is None:
            want = normalise(ref)
            if len(cache) < 4096:
                cache[ref] = want
        got = normalise(text)
        if got == want:
            return passed if extractor is None else Verdict("pass", 1.0, text[:200], None)
        return Verdict("fail", 0.0, text[:200], f"expected {want[:80]!r}")

    return check
