"""The isolated pool: hostile outputs, timeouts, crashes, memory blow-ups, ordering, throughput batches."""

from __future__ import annotations

import textwrap
import time

import pytest

from graduation.spec import VerifierSpec
from graduation.verifiers import Item, VerifierPool, build

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, timeout=TIMEOUT, memory_mb=512) as p:
        yield p


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    root = tmp_path_factory.mktemp("checks")
    (root / "hostile_checks.py").write_text(textwrap.dedent("""
        import os, time
        def hang(output, reference, row):
            if output == "hang":
                while True:
                    pass
            if output == "sleep":
                time.sleep(60)
            return output == reference
        def crash(output, reference, row):
            if output == "crash":
                os._exit(3)
            return output == reference
        def hog(output, reference, row):
            if output == "hog":
                blocks = []
                while True:
                    blocks.append(bytearray(64 << 20))
            return output == reference
    """))
    return root


def test_hostile_outputs_yield_error_or_fail_within_the_timeout(pool, tmp_path):
    marker = tmp_path / "pwned"
    math = build(VerifierSpec(name="m", kind="math", role="substance"))
    hostile = [
        "x" * 10_000_000,                                            # a 10 MB string
        "(" * 5000 + "1" + ")" * 5000,                               # deep nesting
        "[" * 100_000 + "]" * 100_000,
        f"__import__('os').system('touch {marker}')",                 # code
        f"$__import__('os').system('touch {marker}')$",
        "$9^{9^{9^{9^{9^{9^{9}}}}}}$",                                # makes sympy hang
        "$\\int \\frac{e^{x^{x^{x}}}}{\\sin(x^x)} dx$ and $((((x+1)^{99})^{99})^{99})$",
        b"\xff\xfe\xfa not utf-8".decode("utf-8", "surrogateescape"),  # invalid UTF-8 as read from a file
        "\ud800",
    ]
    start = time.monotonic()
    verdicts = pool.verify(math, [Item(h, "2") for h in hostile])
    elapsed = time.monotonic() - start
    assert [v.verdict for v in verdicts] and all(v.verdict in ("error", "fail") for v in verdicts), verdicts
    assert not marker.exists()
    # every item is bounded by the timeout; two workers share the nine items
    assert elapsed < TIMEOUT * len(hostile) / 2 + 5
    assert verdicts[7].verdict == "error" and "UTF-8" in verdicts[7].explanation
    # the pool still works afterwards
    assert pool.verify(math, [Item("$2$", "2")])[0].passed


def test_hang_crash_and_memory_become_errors_and_the_run_goes_on(pool, checks):
    outputs = ["a", "hang", "b", "sleep", "c", "crash", "d", "hog", "e"]
    results = {}
    for fn in ("hang", "crash", "hog"):
        v = build(VerifierSpec(name=fn, kind="python", role="substance",
                               options={"function": f"hostile_checks:{fn}"}), checks)
        results[fn] = pool.verify(v, [Item(o, o) for o in outputs])
    hang = [v.verdict for v in results["hang"]]
    assert hang == ["pass", "error", "pass", "error", "pass", "pass", "pass", "pass", "pass"]
    assert "timed out" in results["hang"][1].explanation
    crash = results["crash"]
    assert crash[5].verdict == "error" and "crash" in crash[5].explanation
    assert all(v.passed for i, v in enumerate(crash) if i != 5)
    hog = results["hog"]
    assert hog[7].verdict == "error" and all(v.passed for i, v in enumerate(hog) if i != 7)


def test_order_is_kept_over_many_batches(pool):
    exact_in_pool = build(VerifierSpec(name="m", kind="math", role="substance"))
    items = [Item(str(i), str(i if i % 3 else i + 1)) for i in range(300)]
    verdicts = pool.verify(exact_in_pool, items)
    assert [v.passed for v in verdicts] == [bool(i % 3) for i in range(300)]


def test_cheap_kinds_run_in_process_and_mix_with_isolated_ones(pool):
    exact = build(VerifierSpec(name="e", kind="exact", role="substance"))
    math = build(VerifierSpec(name="m", kind="math", role="substance"))
    assert not exact.isolated and math.isolated
    verdicts = pool.verify_many([(exact, ("a", "a")), (math, ("$1/2$", "0.5")), (exact, ("a", "b"))])
    assert [v.verdict for v in verdicts] == ["pass", "pass", "fail"]
