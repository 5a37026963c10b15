"""Python-verifier throughput with the bubblewrap sandbox vs without, side by side.

    python benchmarks/sandbox.py [--rows 20000] [--workers 2] [--repeats 3]

The same python verifier (a project module, ``module:function``) checks the same rows through
``VerifierPool`` twice per repeat, alternating: (a) workers under bubblewrap (namespaces, read-only
project, no network, scrubbed environment), (b) ``--unsandboxed`` workers (the same scrubbed environment
and limits, no namespaces). Both include starting the workers. Printed: rows/s of each (median) and the
ratio sandboxed / unsandboxed. Verdicts must be identical.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import report  # noqa: E402

CHECK = """\
def check(output, reference, row):
    return output.strip() == str(reference)
"""


def run(root: Path, mode: str, rows: int, workers: int) -> tuple[float, list[str]]:
    from graduation.spec import VerifierSpec
    from graduation.verifiers import build
    from graduation.verifiers.pool import Item, VerifierPool

    verifier = build(VerifierSpec(name="py", kind="python", role="substance", options={"function": "benchcheck:check"}),
                     root)
    items = [Item(str(i if i % 3 else i + 1), i) for i in range(rows)]
    start = time.perf_counter()
    with VerifierPool(workers, timeout=30, sandbox=mode) as pool:
        verdicts = pool.verify(verifier, items)
    return rows / (time.perf_counter() - start), [v.verdict for v in verdicts]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from graduation.verifiers.sandbox import probe

    if probe() is not None:
        raise SystemExit(f"no sandbox here: {probe()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "benchcheck.py").write_text(CHECK)
        speeds: dict[str, list[float]] = {"bwrap": [], "unsandboxed": []}
        seen = None
        for _ in range(args.repeats):
            for mode in ("bwrap", "unsandboxed"):
                rate, verdicts = run(root, mode, args.rows, args.workers)
                speeds[mode].append(rate)
                if seen is None:
                    seen = verdicts
                elif verdicts != seen:
                    raise SystemExit(f"{mode}: verdicts differ between runs")
    sandboxed, plain = statistics.median(speeds["bwrap"]), statistics.median(speeds["unsandboxed"])
    report(f"python verifier, {args.rows:,} rows, {args.workers} workers (worker start-up included)", [
        ("sandboxed (bubblewrap)", f"{sandboxed:,.0f} rows/s"),
        ("unsandboxed", f"{plain:,.0f} rows/s"),
        ("ratio sandboxed / unsandboxed", f"{sandboxed / plain:.2f}x"),
    ])


if __name__ == "__main__":
    main()
