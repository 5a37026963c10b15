"""Untrusted outputs against every verifier kind: nothing executes, nothing hangs, memory stays bounded.

Each hostile output goes through the isolated pool exactly as an evaluation would send it, against
a reference it does not match; every verdict must be `fail` or `error` (never a pass), the marker
file the injection strings try to create must not exist, the whole batch must finish within the
per-item timeout budget, and the test process's own memory must not grow with the inputs.
"""

from __future__ import annotations

import json
import resource
import sys
import textwrap
import time
from pathlib import Path

import pytest

from graduation.spec import VerifierSpec
from graduation.verifiers import Item, VerifierPool, build

TIMEOUT = 3.0
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
    outputs = hostile_outputs(marker)
    reference = "4" if kind != "regex" else "aaaa"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with VerifierPool(workers=2, timeout=TIMEOUT, memory_mb=1024) as pool:
        start = time.monotonic()
        verdicts = pool.verify(verifier, [Item(o, reference, ROW) for o in outputs])
        elapsed = time.monotonic() - start
        # the pool still answers correctly afterwards
        sane = pool.verify(verifier, [Item(reference if kind != "json_schema" else "4", reference, ROW)])
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(verdicts) == len(outputs)
    passed = [o[:40] for o, v in zip(outputs, verdicts) if v.verdict == "pass"]
    assert not passed, f"{kind} passed hostile outputs: {passed}"
    assert all(v.verdict in ("fail", "error") for v in verdicts)
    assert not marker.exists(), f"{kind}: an output was executed"
    assert elapsed < TIMEOUT * len(outputs) / 2 + 10, f"{kind}: {elapsed:.1f}s"
    assert sane[0].verdict == "pass", (kind, sane)
    # the inputs total ~11 MB; the parent must not balloon while verifying them
    assert grown_mb < 200, f"{kind}: parent grew by {grown_mb:.0f} MB"
