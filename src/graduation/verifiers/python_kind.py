"""``python``: a function ``module:function(output, reference, row) -> bool | float`` written by the domain.

It runs in the isolated worker pool (the function is the domain owner's code; the output it receives is
untrusted data, never code). A float is a score: it passes at ``threshold`` or above.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers.base import BuildContext, Check, Verdict, verifier


def load_function(target: str, root: Path):
    if not isinstance(target, str) or target.count(":") != 1:
        raise VerifierError(f"option function must look like 'package.module:function', got {target!r}")
    module_name, attr = target.split(":")
    root_str = str(Path(root).resolve())
    if root_str not in sys.path:
        sys.path.insert(0, root_str)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise VerifierError(f"option function: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
                            f"it must be importable from the project root {root_str}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise VerifierError(f"option function: {module_name!r} has no callable {attr!r}")
    return fn


@verifier("python")
def python(*, function: str, threshold: float = 1.0, context: BuildContext = BuildContext()) -> Check:
    """Call ``function(output, reference, row)``; ``True``/score >= threshold passes."""
    fn = load_function(function, context.root)
    threshold = float(threshold)

    def check(output: Any, reference: Any, row=None) -> Verdict:
        result = fn(output, reference, dict(row) if row is not None else None)
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool):
            return Verdict.of(result, explanation=None if result else f"{function} returned False")
        if isinstance(result, (int, float)) and math.isfinite(float(result)):
            score = float(result)
            ok = score >= threshold
            return Verdict.of(ok, score=score, explanation=None if ok else f"score {score:g} < {threshold:g}")
        return Verdict.error(f"{function} returned {type(result).__name__}, expected bool or a finite number")

    check.fingerprint = _source_hash(fn)  # editing the function invalidates its cached verdicts
    return check


def _source_hash(fn) -> str | None:
    import hashlib
    import inspect

    try:
        source = Path(inspect.getfile(fn)).read_bytes()
    except (TypeError, OSError):
        return None
    return hashlib.sha256(source).hexdigest()
