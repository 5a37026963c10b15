"""Rates and their bounds: pure arithmetic over pass counts (no I/O, no numpy).

- ``wilson_lower(passed, n)``: the Wilson 95% lower bound (7/8 -> about 0.53), as statsmodels computes it;
- ``prompt_bound(rates)``: the bound over distinct prompts (each prompt one unit, whatever its samples);
- ``shape_gap``: the format pass rate minus the substance pass rate (0.0 with no format verifier).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # scipy.stats.norm.isf(0.025)


def rate(k: int, n: int) -> float:
    return k / n if n else 0.0


def wilson_interval(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``passed`` successes in ``n`` trials (statsmodels' formula)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= passed <= n:
        raise ValueError(f"passed must be within 0..{n}, got {passed}")
    p = passed / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def wilson_lower(passed: int, n: int, z: float = Z95) -> float:
    """Lower bound of the Wilson 95% interval; 0.0 when there is nothing to count."""
    return wilson_interval(passed, n, z)[0] if n > 0 else 0.0


def prompt_bound(rates: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """(mean, Wilson lower bound) over distinct prompts, each worth the fraction of its samples that passed.

    The unit is the prompt, not the sample: k samples of one prompt are correlated and are one unit. The
    bound is Wilson's with n = distinct prompts and p = the mean per-prompt pass fraction; since each
    fraction lies in [0, 1] its variance is at most p(1 - p), so this is never narrower than a Wilson bound
    on independent prompts (a cluster-robust, conservative bound). With one sample per prompt it equals the
    ordinary Wilson bound on the samples.
    """
    n = len(rates)
    if not n:
        return 0.0, 0.0
    mean = sum(rates) / n
    p = min(1.0, max(0.0, mean))
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    return mean, max(0.0, center - half)


def shape_gap(format_pass_rate: float, substance_pass_rate: float, has_format: bool = True) -> float:
    return format_pass_rate - substance_pass_rate if has_format else 0.0


__all__ = ["Z95", "prompt_bound", "rate", "shape_gap", "wilson_interval", "wilson_lower"]
