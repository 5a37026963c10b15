"""Untrusted outputs against every verifier kind: nothing executes, nothing hangs, memory stays bounded.

Each of the 20 hostile outputs goes through ``VerifierPool.verify`` exactly as an evaluation would send it,
against a reference it does not match: the kinds registered ``isolated=False`` (exact, regex, numeric,
json_schema; linear-time and size-capped) are checked in this process, the others (math, python, command,
reasoning_gym) in the pool's worker processes. Every verdict must be `fail` or `error` (never a pass), the
marker file the injection strings try to create must not exist, each output must be answered within its own
timeout, and this process's memory must not grow with the inputs: measured as the current RSS before and
after, and as the peak of Python allocations (tracemalloc) during the calls.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from graduation.spec import VerifierSpec
from graduation.verifiers import Item, VerifierPool, build

TIMEOUT = 3.0
SLACK = 10.0  # replacing a killed worker on a loaded machine; an item left without its own timeout runs for minutes
MEMORY_MB = 200
IN_PARENT = {"exact", "regex", "numeric", "json_schema"}
ROW = json.loads(Path(__file__).resolve().parent.parent.joinpath(
    "domains/data/arith-reasoning-gym/eval.jsonl").read_text().splitlines()[1])  # answer "4"


def hostile_outputs(marker: Path) -> list[str]:
    touch = f"__import__('os').system('touch {marker}')"
    return [
        "x" * 10_000_000,                                                 # 10 MB
        "(" * 50_000 + "5" + ")" * 50_000,                                # deep nesting
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 20_000 + "5" + "}" * 20_000,                            # deeply nested JSON
        touch, f"$\\\\{touch}$", f"{{{{ {touch} }}}}", f"`{touch}`", f"$(touch {marker})", f"; touch {marker}",
        "'; DROP TABLE evidence; --",
        "a" * 100_000 + "!",                                              # catastrophic for backtracking regexes
        "$9^{9^{9^{9^{9^{9^{9}}}}}}$", "$((((x+1)^{99})^{99})^{99})$",    # symbolic blow-ups
        b"\xff\xfe\xfa not utf-8".decode("utf-8", "surrogateescape"),     # invalid UTF-8, as read from a file
        "\ud800\udfff", "\x00\x00\x00", "1e999999", "-nan", "4" * 5000,
    ]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "checks.py").write_text(textwrap.dedent("""
        def equal(output, reference, row):
            # a python verifier receives the output as data; it never evaluates it
            return isinstance(output, str) and output.strip() == str(reference)
    """))
    (root / "compare.py").write_text(textwrap.dedent("""
        import json, sys
        data = json.load(sys.stdin)
        print(json.dumps({"score": 1.0 if data["output"].strip() == data["reference"] else 0.0}))
    """))
    return root


KINDS = {
    "exact": {},
    "regex": {"pattern": "^(a+)+$", "full_match": True},
    "numeric": {"abs_tol": 0},
    "math": {},
    "json_schema": {"schema": {"type": "integer", "const": 4}},
    "python": {"function": "checks:equal"},
    "command": {"argv": [sys.executable, "compare.py"], "timeout": TIMEOUT},
    "reasoning_gym": {"dataset": "basic_arithmetic"},
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_hostile_outputs_never_pass_execute_or_hang(kind: str, project: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    verifier = build(VerifierSpec(name=f"v-{kind}", kind=kind, role="substance", options=KINDS[kind]), project)
    assert verifier.isolated == (kind not in IN_PARENT)
    outputs = hostile_outputs(marker)
    assert len(outputs) == 20  # the README's count
    reference = "4" if kind != "regex" else "aaaa"
    verdicts, slow = [], []
    with VerifierPool(workers=2, timeout=TIMEOUT, memory_mb=1024) as pool:
        pool.verify(verifier, [Item(reference, reference, ROW)])  # workers started before measuring
        before = rss_mb()
        tracemalloc.start()
        for output in outputs:  # one at a time, so that each has its own clock
            start = time.monotonic()
            verdicts += pool.verify(verifier, [Item(output, reference, ROW)])
            elapsed = time.monotonic() - start
            if elapsed > TIMEOUT + SLACK:
                slow.append((output[:40], round(elapsed, 1), verdicts[-1]))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        grown = rss_mb() - before
        # the pool still answers correctly afterwards (twice: a worker that replaced a killed one builds the
        # verifier on its first item, which on a loaded machine can outlast the 3 s timeout)
        sane = pool.verify(verifier, [Item(reference if kind != "json_schema" else "4", reference, ROW)] * 2)
    assert len(verdicts) == len(outputs)
    passed = [o[:40] for o, v in zip(outputs, verdicts) if v.verdict == "pass"]
    assert not passed, f"{kind} passed hostile outputs: {passed}"
    assert all(v.verdict in ("fail", "error") for v in verdicts)
    assert not marker.exists(), f"{kind}: an output was executed"
    assert not slow, f"{kind}: outputs answered later than their timeout ({TIMEOUT:g}s + {SLACK:g}s): {slow}"
    assert sane[-1].verdict == "pass", (kind, sane)
    # the inputs total ~11 MB, already held before measuring; the parent must not balloon while verifying them
    assert peak / 2**20 < MEMORY_MB, f"{kind}: {peak / 2**20:.0f} MB of Python allocations during the calls"
    assert grown < MEMORY_MB, f"{kind}: the parent's RSS grew by {grown:.0f} MB"


def rss_mb() -> float:
    """This process's current resident set (not a lifetime peak that an earlier test may have set)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
