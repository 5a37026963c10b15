"""Phase arithmetic against reference implementations: Wilson bound (statsmodels), Fisher's test (scipy)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import proportion_confint

from graduation.policy.phase import fisher_less, samples_to_clear, wilson_lower


def test_seven_of_eight():
    assert wilson_lower(7, 8) == pytest.approx(0.529, abs=1e-3)
    assert wilson_lower(7, 8) == pytest.approx(proportion_confint(7, 8, method="wilson")[0], abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(case):
    passed, n = case
    assert wilson_lower(passed, n) == pytest.approx(proportion_confint(passed, n, method="wilson")[0], abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400), st.integers(0, 400), st.integers(0, 400))
def test_fisher_less_matches_scipy(a, b, c, d):
    expected = fisher_exact([[a, b], [c, d]], alternative="less")[1]
    assert fisher_less(a, b, c, d) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_fisher_tiny_p_values_keep_precision():
    expected = fisher_exact([[1800, 200], [2000, 0]], alternative="less")[1]
    got = fisher_less(1800, 200, 2000, 0)
    assert got == pytest.approx(expected, rel=1e-6)
    assert got < 1e-50


@pytest.mark.parametrize("bar, observed", [(0.97, 0.875), (0.95, 0.99), (0.8, 0.5), (0.5, 1.0),
                                           (0.9999999999999999, 0.0)])  # near 1, rate * n rounds past n
def test_samples_to_clear_really_clears(bar, observed):
    passes, n, rate = samples_to_clear(bar, observed)
    assert 0 <= passes <= n and wilson_lower(passes, n) >= bar
    assert wilson_lower(min(n - 1, round(rate * (n - 1))), n - 1) < bar or n == 1  # and it is the least such n
    assert rate > bar


def test_samples_to_clear_impossible_bar():
    assert samples_to_clear(1.0, 0.9) is None
