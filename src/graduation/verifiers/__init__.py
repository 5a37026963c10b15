"""Verifiers: programmatic checks of one output against one reference, run safely.

    from graduation.verifiers import VerifierPool, build, Item

    verifier = build(spec, root)                      # a VerifierSpec from the domain, bound to its kind
    verifier("42", "42")                              # in-process: Verdict(verdict='pass', score=1.0, ...)
    with VerifierPool(workers=2, timeout=5) as pool:  # untrusted outputs, isolated kinds (math, python, ...)
        verdicts = pool.verify(verifier, [Item(output, reference, row), ...])

Kinds are registered factories (``@verifier("name")``); see ``base`` for the contract, ``pool`` for the
isolation, and ``validation`` for the references-and-controls check a verifier must pass before it counts.
"""

from graduation.verifiers.base import (
    BuildContext,
    Verdict,
    Verifier,
    build,
    get_kind,
    kinds,
    reference_text,
    verifier,
)
from graduation.verifiers.pool import Item, VerifierPool, verify_items

__all__ = ["BuildContext", "Item", "Verdict", "Verifier", "VerifierPool", "build", "get_kind", "kinds",
           "reference_text", "verifier", "verify_items"]
