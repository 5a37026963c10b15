"""The Ray engine against the local engine on this machine: rows/s side by side, peak memory, equal records.

    .venv/bin/python benchmarks/ray_engine.py                          # 1,000,000 exact+regex rows, 2,000 math
    .venv/bin/python benchmarks/ray_engine.py --rows 200000 --math-rows 500   # a quick look

Each engine runs ``service.evaluation.evaluate`` in a child process of its own on the same outputs, with the verifiers'
validation already recorded and the verdict cache off:

- local: the default engine (a large JSONL of in-process kinds is split over one forked process per core;
  isolated kinds go to the ``VerifierPool``);
- ray: a local Ray with as many CPUs as the machine has, started before the clock starts (its start-up is
  reported on its own line), then ``RayEngine`` (Ray Data reads, actors verify chunks, the driver merges).

Peak memory is the proportional set size (shared pages split between their sharers) of the child and every
process below it (Ray's GCS, raylet, workers and object store included), sampled every 50 ms. The records of
the two engines are asserted equal, field for field. Ray overhead = local rows/s / Ray rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakMemory, check_verifiers_fn, evaluate_fn, ray_engine_cls, report  # noqa: E402
from verifiers import make_cheap_project, make_math_project, math_rows, register, write_cheap_outputs  # noqa: E402


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                try:
                    todo += [int(p) for p in (task / "children").read_text().split()]
                except OSError:
                    pass
        except OSError:
            pass
    return found


def _tree_pss_mb(pid: int) -> float:
    total = 0
    for p in _descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def child(root: str, domain: str, outputs: str, engine: str, cpus: int) -> None:
    """One engine's scan, in a process of its own; prints a JSON line."""
    from graduation.store import Database
    from graduation.verifiers import VerifierPool

    evaluate = evaluate_fn()

    memory = PeakMemory(lambda: _tree_pss_mb(os.getpid())).start()
    chosen, startup = None, 0.0
    if engine == "ray":
        import logging

        import ray

        RayEngine = ray_engine_cls()
        began = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        startup = time.perf_counter() - began
        chosen = RayEngine()
    db = Database(f"sqlite:///{root}/registry/registry.db")
    with VerifierPool(cpus, timeout=10.0) as pool:
        began = time.perf_counter()
        result = evaluate(db, Path(root), domain, Path(outputs), model="bench", store=False, cache=False, pool=pool,
                          engine=chosen)
        elapsed = time.perf_counter() - began
    memory.stop()
    if engine == "ray":
        import ray

        ray.shutdown()
    print(json.dumps({"record": result.record.model_dump(mode="json"), "seconds": elapsed, "startup": startup,
                      "pss_mb": memory.peak}))


def run(root: Path, domain: str, outputs: Path, engine: str, cpus: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(root), domain, str(outputs), engine, str(cpus)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(workdir: Path, kind: str, rows: int) -> tuple[Path, str, Path]:
    from graduation.store import Database

    check_verifiers = check_verifiers_fn()
    root = workdir / kind
    outputs = workdir / f"{kind}_outputs.jsonl"
    if kind == "cheap":
        # the eval prompts "What is item P?" (P < 50,000) with their answers; row i answers prompt i % 50,000
        write_cheap_outputs(outputs, rows, make_cheap_project(root, rows))
        domain = "cheap"
    else:
        data = math_rows(rows)
        make_math_project(root, data)
        with outputs.open("w") as fh:
            for r in data:
                fh.write(json.dumps({"prompt": r["prompt"], "output": r["output"]}) + "\n")
        domain = "algebra"
    db_url = f"sqlite:///{root}/registry/registry.db"
    register(root, db_url)
    check_verifiers(Database(db_url), root, domain)
    return root, domain, outputs


def compare(workdir: Path, kind: str, rows: int, cpus: int) -> list[tuple[str, str]]:
    root, domain, outputs = prepare(workdir, kind, rows)
    local = run(root, domain, outputs, "local", cpus)
    remote = run(root, domain, outputs, "ray", cpus)
    assert remote["record"] == local["record"], "the engines' records differ"
    n = local["record"]["n"]
    assert n == rows and remote["record"]["passed"] == local["record"]["passed"]
    local_rate, ray_rate = n / local["seconds"], n / remote["seconds"]
    return [
        (f"{kind}: rows (equal records)", f"{n:,} rows, {local['record']['passed']:,} passed on both engines"),
        (f"{kind}: local engine", f"{local_rate:,.0f} rows/s ({local['seconds']:.1f} s), peak {local['pss_mb']:.0f} MB"),
        (f"{kind}: ray engine", f"{ray_rate:,.0f} rows/s ({remote['seconds']:.1f} s), peak {remote['pss_mb']:.0f} MB "
                                f"(+ {remote['startup']:.1f} s to start Ray)"),
        (f"{kind}: ray overhead", f"{local_rate / ray_rate:.2f}x slower, {remote['pss_mb'] / local['pss_mb']:.1f}x memory"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="exact+regex rows (0: skip)")
    parser.add_argument("--math-rows", type=int, default=2_000, help="math rows (0: skip)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, domain, outputs, engine, cpus = args.child
        child(root, domain, outputs, engine, int(cpus))
        return
    lines: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        if args.rows:
            lines += compare(Path(tmp), "cheap", args.rows, args.cpus)
        if args.math_rows:
            lines += compare(Path(tmp), "math", args.math_rows, args.cpus)
    report(f"Ray engine vs local engine, {args.cpus} CPUs", lines)


if __name__ == "__main__":
    main()
