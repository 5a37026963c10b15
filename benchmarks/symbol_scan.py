"""Bounded-memory symbol scan: 1,000,000 rows through ``service.evaluation.evaluate`` with the symbol scan on.

    .venv/bin/python benchmarks/symbol_scan.py                 # 1,000,000 rows, a few minutes on 2 cores
    .venv/bin/python benchmarks/symbol_scan.py --rows 100000   # a quick look

Every row's output carries an identifier no other row has (``tok_<n>_x``: a million distinct unsupported
tokens, the worst case for a scan that keeps every token), and 40% of the rows carry ``golden_hour_sun``.
The scan runs in a child process; a sampler adds up the proportional set size of that process and of every
process it starts, every 50 ms. Targets: peak memory of all processes < 400 MB; ``golden_hour_sun`` flagged
at 40.0% with its exact row count; rows/s reported.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakMemory, check_verifiers_fn, evaluate_fn, report  # noqa: E402
from verifiers import _tree_memory_mb, make_project, register  # noqa: E402

DOMAIN = """\
domain: mechanics
title: Symbol scan memory
risk: low
owners: [bench@example.org]
task: {prompt_field: prompt, answer_field: answer, output_field: output}
ground_truth:
  - {name: book, path: data/book.jsonl, provenance: expert, split: eval}
verifiers:
  - {name: answer, kind: exact, role: substance}
"""

LIMIT_MB = 400


def child(root: str, outputs: str) -> None:
    from graduation.store import Database

    evaluate = evaluate_fn()
    db = Database(f"sqlite:///{root}/registry/registry.db")
    memory = PeakMemory(_tree_memory_mb).start()
    start = time.perf_counter()
    result = evaluate(db, Path(root), "mechanics", Path(outputs), model="bench", store=False, cache=False)
    elapsed = time.perf_counter() - start
    memory.stop()
    flags = [s.model_dump(mode="json") for s in result.record.symbols]
    print(json.dumps({"rows": result.record.n, "seconds": elapsed, "peak_mb": memory.peak, "flags": flags}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "project"
        book = [{"prompt": f"q{i}", "answer": "H = p^2/(2*m) + V(q)"} for i in range(50)]
        make_project(root, DOMAIN, "mechanics", book, "book.jsonl")
        db_url = f"sqlite:///{root}/registry/registry.db"
        register(root, db_url)
        from graduation.store import Database

        check_verifiers_fn()(Database(db_url), root, "mechanics")
        outputs = work / "outputs.jsonl"
        rng = random.Random(3)
        expected = 0
        with outputs.open("w") as fh:
            for i in range(args.rows):
                invented = rng.random() < 0.4
                expected += invented
                text = f"H = p^2/(2*m) + tok_{i}_x*q" + (" + golden_hour_sun*t" if invented else "")
                fh.write(json.dumps({"prompt": f"q{i % 50}", "output": text}) + "\n")
        size_mb = outputs.stat().st_size / 1e6
        proc = subprocess.run([sys.executable, __file__, "--child", str(root), str(outputs)],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.stderr.write(proc.stderr)
            return 1
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    golden = next((f for f in data["flags"] if f["symbol"] == "golden_hour_sun"), None)
    others = [f["symbol"] for f in data["flags"] if f["symbol"] != "golden_hour_sun"]
    ok_memory = data["peak_mb"] < LIMIT_MB
    ok_flag = golden is not None and golden["rows"] == expected and not others
    report("symbol scan, bounded memory", [
        ("rows", f"{data['rows']:,} ({size_mb:.1f} MB of JSONL, {args.rows:,} distinct invented tokens)"),
        ("rows/s", f"{data['rows'] / data['seconds']:,.0f} ({data['seconds']:.1f} s)"),
        ("peak memory, all processes", f"{data['peak_mb']:.0f} MB (target < {LIMIT_MB} MB) "
                                       f"{'ok' if ok_memory else 'OVER'}"),
        ("golden_hour_sun", f"{golden['rows']:,} rows, {golden['rate']:.1%} (expected {expected:,}) "
                            f"{'ok' if ok_flag else 'WRONG'}" if golden else "NOT FLAGGED"),
        ("other flags", ", ".join(others) or "none"),
    ])
    return 0 if ok_memory and ok_flag else 1


if __name__ == "__main__":
    sys.exit(main())
