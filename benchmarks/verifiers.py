"""Verifier throughput, side by side with what it is compared to.

    .venv/bin/python benchmarks/verifiers.py            # all three, a few minutes on 2 cores
    .venv/bin/python benchmarks/verifiers.py --rows 200000 --math-rows 2000   # a quick look

1. exact + regex over a 1,000,000-row JSONL through ``service.evaluation.evaluate`` (read, look up, verify, tally,
   slices, symbols, consistency), in a child process; the rows answer the domain's 50,000 registered eval
   prompts (split: eval) for the registered model ``bench``, 20 rows a prompt: rows/s, rows per CPU-second and the peak memory; beside
   it the baseline of a bare loop (``json.loads`` + ``==`` + ``re2``) over the same file, and a variant whose
   rows carry a nested field holding a null (pyarrow's bulk path does not take those). Flat uniform rows are
   the reader's best case. Targets: >= 200,000 rows/s, < 300 MB.
2. math on the same 10,000 rows: the same built verifier called sequentially in one process versus
   ``VerifierPool`` (isolation on, one worker per core); a bare math-verify loop is shown for reference.
   Target: >= 1.7x.
3. A second scan of unchanged outputs served from the verdict cache, versus the first scan (math, the same
   10,000 rows, validation already recorded). Target: >= 20x.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import PeakMemory, check_verifiers_fn, evaluate_fn, load_many_fn, report  # noqa: E402

CHEAP_DOMAIN = """\
domain: cheap
title: Exact and regex throughput
risk: low
owners: [bench@example.org]
task: {prompt_field: prompt, answer_field: answer, output_field: output}
ground_truth:
  - {name: book, path: data/book.jsonl, provenance: expert, split: eval}
verifiers:
  - {name: answer, kind: exact, role: substance}
  - {name: shape, kind: regex, role: format, options: {pattern: '^-?[0-9]+$'}}
"""

MATH_DOMAIN = """\
domain: algebra
title: Math throughput
risk: low
owners: [bench@example.org]
task: {prompt_field: prompt, answer_field: answer, output_field: output}
ground_truth:
  - {name: book, path: data/algebra.jsonl, provenance: expert, split: eval}
verifiers:
  - {name: equal, kind: math, role: substance, mutations: false}
"""


def make_project(root: Path, domain_text: str, name: str, rows: list[dict], data_name: str) -> None:
    for d in ("domains/data", "policies", "registry"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "domains" / f"{name}.yaml").write_text(domain_text)
    with (root / "domains" / "data" / data_name).open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def make_math_project(root: Path, rows: list[dict]) -> None:
    """The algebra domain, its ground truth being the eval prompts of ``rows`` with their answers."""
    make_project(root, MATH_DOMAIN, "algebra", [{"prompt": r["prompt"], "answer": r["answer"]} for r in rows],
                 "algebra.jsonl")


def register(root: Path, db_url: str) -> None:
    """Register the project's domains, and the model ``bench`` whose outputs are evaluated (by digest)."""
    import hashlib

    from graduation.store import Database
    from graduation.store.domains import register as reg
    from graduation.store.models import register_model

    db = Database(db_url)
    with db.write() as session:
        for loaded in load_many_fn()([root / "domains"], root):
            reg(session, loaded)
        for model in ("bench", "bench-again"):  # bench-again: the cache's second scan (one file is one round)
            register_model(session, model, digest="sha256:" + hashlib.sha256(model.encode()).hexdigest(),
                           kind="external")


# The cheap domain's registered eval prompts: "What is item P?" for P < CHEAP_PROMPTS, each with its answer.
# ``evaluate`` verifies an output only against the registered reference of its prompt, so every output row
# names one of these prompts (row i: prompt i % CHEAP_PROMPTS) and carries that prompt's answer for the bare
# loop; each output is the answer (80%) or the answer + 1.
CHEAP_PROMPTS = 50_000


def cheap_answers(n: int) -> list[str]:
    rng = random.Random(7)
    return [str(rng.randint(-10_000, 10_000)) for _ in range(n)]


def make_cheap_project(root: Path, rows: int) -> list[str]:
    """The cheap domain with ground truth for min(rows, CHEAP_PROMPTS) eval prompts; returns their answers."""
    answers = cheap_answers(min(rows, CHEAP_PROMPTS))
    make_project(root, CHEAP_DOMAIN, "cheap", [{"prompt": f"What is item {p}?", "answer": a}
                                               for p, a in enumerate(answers)], "book.jsonl")
    return answers


def write_cheap_outputs(path: Path, rows: int, answers: list[str], nested: bool = False) -> int:
    """Write the outputs file; returns how many outputs equal their answer."""
    rng = random.Random(1)
    expected = 0
    with path.open("w") as fh:
        for i in range(rows):
            p = i % len(answers)
            answer = int(answers[p])
            output = answer if rng.random() < 0.8 else answer + 1
            expected += output == answer
            meta = f', "meta": {{"source": null, "k": {i}}}' if nested else ""
            fh.write(f'{{"prompt": "What is item {p}?", "answer": "{answer}", "output": "{output}"{meta}}}\n')
    return expected


# -- 1. exact + regex ------------------------------------------------------------------------------

def _tree_memory_mb() -> float:
    """Proportional set size (shared pages split between sharers) of this process and its children, in MB."""
    pids = [os.getpid()]
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cheap_child(root: str, outputs: str) -> None:
    """Runs in a child process so that the memory measured is the scan's own (it and its forked helpers)."""
    import resource

    from graduation.store import Database

    evaluate = evaluate_fn()
    db = Database(f"sqlite:///{root}/registry/registry.db")
    memory = PeakMemory(_tree_memory_mb).start()
    start, cpu = time.perf_counter(), time.process_time()
    result = evaluate(db, Path(root), "cheap", Path(outputs), model="bench", store=False, cache=False)
    elapsed = time.perf_counter() - start
    memory.stop()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"rows": result.record.n, "passed": result.record.passed, "seconds": elapsed,
                      "cpu_seconds": time.process_time() - cpu + children.ru_utime + children.ru_stime,
                      "pss_mb": memory.peak, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "child_rss_mb": children.ru_maxrss / 1024}))


def bench_cheap(workdir: Path, rows: int) -> dict:
    root = workdir / "cheap"
    answers = make_cheap_project(root, rows)
    db_url = f"sqlite:///{root}/registry/registry.db"
    register(root, db_url)
    from graduation.store import Database

    check_verifiers_fn()(Database(db_url), root, "cheap")
    results = {}
    for variant in ("flat", "nested"):
        outputs = workdir / f"cheap_outputs_{variant}.jsonl"
        expected = write_cheap_outputs(outputs, rows, answers, nested=variant == "nested")
        proc = subprocess.run([sys.executable, __file__, "--cheap-child", str(root), str(outputs)],
                              capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["rows"] == rows and result["passed"] == expected, (variant, result, expected)
        base = baseline_loop(outputs)
        assert base["rows"] == rows and base["passed"] == expected and base["shape"] == rows, (variant, base)
        results[variant] = {**result, "baseline": base}
    return results


def baseline_loop(outputs: Path) -> dict:
    """The floor: read each line with json.loads, compare, match the regex with re2. Nothing else."""
    import re2

    pattern = re2.compile(r"-?[0-9]+")
    loads, fullmatch = json.loads, pattern.fullmatch
    rows = passed = shape = 0
    start, cpu = time.perf_counter(), time.process_time()
    with outputs.open("rb") as fh:
        for line in fh:
            row = loads(line)
            output = row["output"]
            rows += 1
            passed += output == row["answer"]
            shape += fullmatch(output) is not None
    return {"rows": rows, "passed": passed, "shape": shape, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu}


# -- 2. math, isolated pool vs a plain loop --------------------------------------------------------

def math_rows(n: int, seed: int = 2) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = rng.randint(1, 99), rng.randint(2, 99)
        kind = i % 4
        if kind == 0:
            answer, right, wrong = f"\\frac{{{a}}}{{{b}}}", f"$\\frac{{{2 * a}}}{{{2 * b}}}$", f"$\\frac{{{a + 1}}}{{{b}}}$"
        elif kind == 1:
            answer, right, wrong = f"{a}x + {b}", f"$x \\cdot {a} + {b}$", f"${a}x - {b}$"
        elif kind == 2:
            answer, right, wrong = str(a * b), f"The answer is $\\boxed{{{a * b}}}$", f"$\\boxed{{{a * b + 1}}}$"
        else:
            answer, right, wrong = f"\\sqrt{{{a * a}}}", f"${a}$", f"${a + 2}$"
        output = right if rng.random() < 0.7 else wrong
        rows.append({"prompt": f"Problem {i}", "answer": answer, "output": f"Working... so {output}"})
    return rows


def plain_math_loop(rows: list[dict]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, passes) of math-verify called row by row in this process."""
    from math_verify import parse, verify

    start, cpu = time.perf_counter(), time.process_time()
    passed = 0
    for row in rows:
        gold = parse(f"${row['answer']}$")
        pred = parse(row["output"])
        passed += bool(verify(gold, pred))
    return time.perf_counter() - start, time.process_time() - cpu, passed


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare_math(rows: list[dict], workers: int, rounds: int = 5) -> dict:
    """The same verifier called sequentially, the pool, and a bare math-verify loop take turns on the same
    slices, so that all meet the same machine load."""
    from graduation.spec import VerifierSpec
    from graduation.verifiers import Item, VerifierPool, build

    verifier = build(VerifierSpec(name="equal", kind="math", role="substance"))
    items = [Item(r["output"], r["answer"], None) for r in rows]
    totals = {"plain_s": 0.0, "plain_cpu": 0.0, "pool_s": 0.0, "pool_cpu": 0.0, "plain_pass": 0, "pool_pass": 0,
              "seq_s": 0.0, "seq_cpu": 0.0, "seq_pass": 0}
    start = time.perf_counter()
    with VerifierPool(workers, timeout=10) as pool:
        pool.verify(verifier, items[:64])  # start every worker
        totals["startup_s"] = time.perf_counter() - start
        pids = [w.process.pid for w in pool._workers]
        size = -(-len(rows) // rounds)
        for k in range(rounds):
            part = slice(k * size, (k + 1) * size)
            t, c = time.perf_counter(), time.process_time()
            totals["seq_pass"] += sum(verifier.check(*item).passed for item in items[part])
            totals["seq_s"] += time.perf_counter() - t
            totals["seq_cpu"] += time.process_time() - c
            wall, cpu, passed = plain_math_loop(rows[part])
            totals["plain_s"] += wall
            totals["plain_cpu"] += cpu
            totals["plain_pass"] += passed
            before = sum(_cpu_of(p) for p in pids)
            t = time.perf_counter()
            verdicts = pool.verify(verifier, items[part])
            totals["pool_s"] += time.perf_counter() - t
            totals["pool_cpu"] += sum(_cpu_of(p) for p in pids) - before
            totals["pool_pass"] += sum(v.passed for v in verdicts)
    return totals


# -- 3. the verdict cache --------------------------------------------------------------------------

def bench_cache(workdir: Path, rows: list[dict], workers: int) -> tuple[float, float, int]:
    from graduation.store import Database
    from graduation.verifiers import VerifierPool

    check_verifiers, evaluate = check_verifiers_fn(), evaluate_fn()

    root = workdir / "algebra"
    make_math_project(root, rows)
    db_url = f"sqlite:///{root}/registry/registry.db"
    register(root, db_url)
    outputs = workdir / "math_outputs.jsonl"
    outputs.write_text("".join(json.dumps({"prompt": r["prompt"], "output": r["output"]}) + "\n" for r in rows))
    db = Database(db_url)
    with VerifierPool(workers, timeout=10) as pool:
        check_verifiers(db, root, "algebra", pool=pool)
        start = time.perf_counter()
        first = evaluate(db, root, "algebra", outputs, model="bench", pool=pool)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        # the same outputs again, recorded for a second registered model: the registry refuses to record one
        # file twice for the same model, and the verdict cache is keyed by verifier, reference and output
        second = evaluate(db, root, "algebra", outputs, model="bench-again", pool=pool)
        second_s = time.perf_counter() - start
    assert second.cache_hits == len(rows) and first.record.passed == second.record.passed, \
        (second.cache_hits, first.record.passed, second.record.passed)
    return first_s, second_s, second.cache_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--math-rows", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cheap-child", nargs=2, metavar=("ROOT", "OUTPUTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cheap_child:
        cheap_child(*args.cheap_child)
        return
    with tempfile.TemporaryDirectory(prefix="graduation-bench-") as tmp:
        workdir = Path(tmp)
        cheap = bench_cheap(workdir, args.rows)
        load = f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        for variant, title in (("flat", "flat uniform rows (pyarrow's bulk path: the best case)"),
                               ("nested", "rows with a nested field holding a null (read line by line)")):
            c, b = cheap[variant], cheap[variant]["baseline"]
            report(f"exact + regex over {c['rows']:,} JSONL rows, {title}: evaluate (the file split across "
                   "one forked process per core) vs a bare json.loads + re2 loop in one process", [
                ("evaluate rows/s (wall)", f"{c['rows'] / c['seconds']:,.0f}   (target >= 200,000)"),
                ("evaluate rows per CPU-second", f"{c['rows'] / c['cpu_seconds']:,.0f}   "
                                                        f"({c['seconds']:.2f} s wall, {c['cpu_seconds']:.2f} s CPU)"),
                ("json.loads + re2 rows/s (wall)", f"{b['rows'] / b['seconds']:,.0f}"),
                ("json.loads + re2 rows per CPU-second", f"{b['rows'] / b['cpu_seconds']:,.0f}"),
                ("ratio per CPU-second evaluate / bare loop", f"{b['cpu_seconds'] / c['cpu_seconds']:.2f}x"),
                ("passes (asserted equal)", f"{c['passed']:,} of {c['rows']:,} on both sides"),
                ("peak memory, all processes (PSS)", f"{c['pss_mb']:.0f} MB   (target < 300 MB)"),
                ("peak RSS: main / largest helper", f"{c['rss_mb']:.0f} MB / {c['child_rss_mb']:.0f} MB"),
                ("load average (1 min)", load),
            ])
        rows = math_rows(args.math_rows)
        m = compare_math(rows, args.workers)
        n = len(rows)
        assert m["seq_pass"] == m["pool_pass"], m
        report(f"math on {n:,} rows: isolated pool ({args.workers} workers) vs the same verifier called "
               "sequentially in one process (taking turns on the same slices)", [
            ("same verifier, sequential rows/s", f"{n / m['seq_s']:,.0f}   ({m['seq_pass']} pass; "
                                                 f"{1000 * m['seq_cpu'] / n:.2f} ms CPU per row)"),
            ("pool rows/s", f"{n / m['pool_s']:,.0f}   ({m['pool_pass']} pass, asserted equal; "
                            f"{1000 * m['pool_cpu'] / n:.2f} ms worker CPU per row)"),
            ("ratio pool / same verifier sequential", f"{m['seq_s'] / m['pool_s']:.2f}x   (target >= 1.7x)"),
            ("for reference: bare math-verify loop", f"{n / m['plain_s']:,.0f} rows/s ({m['plain_pass']} pass; no "
                                                     "reference cache, math-verify's own timeouts)"),
            ("cores obtained: sequential / pool", f"{m['seq_cpu'] / m['seq_s']:.2f} / {m['pool_cpu'] / m['pool_s']:.2f}"),
            ("pool start-up (once)", f"{m['startup_s']:.2f} s"),
            ("load average (1 min)", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
        ])
        first_s, second_s, hits = bench_cache(workdir, rows, args.workers)
        report(f"second scan of {len(rows):,} unchanged math outputs (verdict cache)", [
            ("first scan", f"{first_s:.2f} s"),
            ("second scan", f"{second_s:.3f} s   ({hits:,} cache hits)"),
            ("ratio first / second", f"{first_s / second_s:.1f}x   (target >= 20x)"),
        ])


if __name__ == "__main__":
    main()
