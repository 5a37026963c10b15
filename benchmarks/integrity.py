"""What integrity costs: every record chained, decisions read checked summaries (or every row, re-hashed).

Printed side by side, as ratios to the start-up floor `registry list --json` on the same registry in the
same run (cold processes, alternating, after one run of each has written its bytecode, as an install has):

1. `registry status --json` over 1,000 domains and 100,000 chained evidence records (target <= 1.5x floor);
2. `registry status DOMAIN --model M --require deploy:sandbox`, one domain (target <= 1.2x floor);
3. in process, on that registry: `decisions()` from the summaries against `decisions(from_rows=True)`,
   which reads and re-hashes every row (the answers are asserted equal);
4. in-process decide over 10,000 domains: from folded evidence (what a summary holds: the registry's
   path) and from the records (`decide`, folding them first): decisions/s (target >= 40,000/s), with the
   garbage collector paused as `decisions()` pauses it;
5. evidence appends through `add_evidence` (row, chained entry and the basis' summary, one transaction
   each): records/s on SQLite, and on PostgreSQL when REGISTRY_DB_URL points at one
   (`scripts/with-postgres.sh`).

Counts are asserted: every domain is decided, and the summaries' answers (evidence counted per decision
included) equal the row-by-row ones. Run: `.venv/bin/python benchmarks/integrity.py` (`--quick` for 100
domains / 10,000 records).
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import report, time_command  # noqa: E402


def populate_chained(root: Path, n_domains: int, n_evidence: int, url: str | None = None) -> str:
    """A registry of ``n_domains`` with ``n_evidence`` records in all, each chained as ``add_evidence`` does
    (written in bulk: the same row hashes and entries, without one transaction per record)."""
    from sqlalchemy import insert

    from graduation.store.auditlog import GENESIS, canonical, compute_hash
    from graduation.policy.testing import make_evidence
    from graduation.store import Database
    from graduation.store.chain import evidence_record_hash
    from graduation.records import LoadedDomain
    from graduation.store.domains import register
    from graduation.store.tables import AuditEntryRow, EvidenceRow, utcnow
    from policy import make_items, make_spec

    from graduation.store.models import register_model
    from graduation.store.summaries import build_missing

    url = url or f"sqlite:///{root / 'registry' / 'registry.db'}"
    db = Database(url)
    rng = random.Random(11)
    per_domain = n_evidence // n_domains
    with db.write() as session:
        models = [register_model(session, name, digest="sha256:" + str(k) * 64, kind="external")[0]
                  for k, name in enumerate(MODELS, start=1)]
        for i in range(n_domains):
            spec, _scenario = make_spec(i, rng)
            register(session, LoadedDomain(spec, f"domains/{spec.domain}.yaml", {}))
    with db.read() as session:
        tail = session.exec(__import__("sqlmodel").select(AuditEntryRow).order_by(AuditEntryRow.seq.desc())).first()
    seq, prev = (tail.seq, tail.entry_hash) if tail else (0, GENESIS)
    rows, entries = [], []
    rng = random.Random(11)
    for i in range(n_domains):
        spec, scenario = make_spec(i, rng)
        basis = spec.basis_hash({})
        items = make_items(spec, scenario, rng, rounds=max(1, per_domain - 5))
        while len(items) < per_domain:
            items.append(("human_audit", {"auditor": f"p{len(items)}", "checked": 10, "held": 10}, None))
        for kind, summary, author in items[:per_domain]:
            ev = make_evidence(spec.domain, kind, summary, len(rows))
            uid = uuid.uuid4().hex
            data = ev.record.model_dump(mode="json")
            rnd = summary.get("round")
            owner = models[rnd % len(models)] if kind in ("eval", "training_round") else None  # rounds of 2 models
            model, model_id = (owner.ref, owner.id) if owner is not None else (None, None)
            record_hash = evidence_record_hash(uid=uid, domain=spec.domain, version=1, basis=basis, kind=kind,
                                               summary=data, model=model, round=rnd, data_hash=None, author=author,
                                               model_id=model_id)
            seq += 1
            created = f"2026-01-01T00:00:00.{seq % 1000000:06d}Z"
            payload = {"record": "evidence", "key": uid, "digest": record_hash}
            digest = compute_hash(seq, "evidence", spec.domain, created, payload, prev)
            entries.append({"seq": seq, "kind": "evidence", "domain": spec.domain, "created_at": created,
                            "payload_json": canonical(payload), "prev_hash": prev, "entry_hash": digest})
            prev = digest
            rows.append({"uid": uid, "domain": spec.domain, "domain_version": 1, "basis_hash": basis, "kind": kind,
                         "model": model, "model_id": model_id, "round": rnd, "data_hash": None, "author": author, "created_at": utcnow(),
                         "summary_json": json.dumps(data, sort_keys=True, ensure_ascii=False),
                         "record_hash": record_hash, "entry_hash": digest})
    with db.write() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(AuditEntryRow), entries[start:start + 5000])
            session.execute(insert(EvidenceRow), rows[start:start + 5000])
    with db.write() as session:
        build_missing(session)  # what add_evidence maintains record by record, built once for rows written in bulk
    db.dispose()
    return url


MODELS = ("bench-a", "bench-b")


def _alternate(commands: dict[str, list[str]], env: dict, cwd: Path, repeat: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeat):
        for name, argv in commands.items():
            samples[name].append(time_command(argv, repeat=1, cwd=cwd, env=env))
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def bench_cli(n_domains: int, n_evidence: int, repeat: int) -> list[tuple[str, str]]:
    registry = Path(sys.executable).parent / "registry"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "registry").mkdir()
        t0 = time.perf_counter()
        url = populate_chained(root, n_domains, n_evidence)
        setup = time.perf_counter() - t0
        # bytecode compiled and kept, as in any install: without it, every run compiles what it imports, and the
        # floor and status would each carry a different compile cost
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"REGISTRY_DB_URL": url, "GRADUATION_PROJECT": str(root)})
        out = subprocess.run([str(registry), "status", "--json"], cwd=root, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"registry status failed: {out.stderr}")
        data = json.loads(out.stdout)
        assert len(data["decisions"]) == n_domains, len(data["decisions"])
        fast, slow, t_fast, t_slow = in_process(url)
        assert [d["decision_id"] for d in data["decisions"]] == [d.decision.id for d in slow]
        counted = sum(d["evidence_count"] for d in data["decisions"])
        assert counted == sum(len(d.decision.evidence_hashes) for d in slow) and counted > n_evidence // 2, counted
        one = [str(registry), "status", "domain-00007", "--model", MODELS[0], "--require", "deploy:sandbox", "--json"]
        check = subprocess.run(one, cwd=root, env=env, capture_output=True, text=True)
        assert check.returncode in (0, 1), check.stderr
        commands = {"floor": [str(registry), "list", "--json"], "status": [str(registry), "status", "--json"],
                    "one": one}
        _alternate(commands, env, root, 1)  # a first run of each writes its bytecode
        times = _alternate(commands, env, root, repeat)
    floor = times["floor"]
    return [
        ("domains / chained evidence records", f"{n_domains:,} / {n_evidence:,} (set up in {setup:.0f} s)"),
        ("registry list --json (floor)", f"{floor * 1000:.0f} ms"),
        ("registry status --json, cold", f"{times['status'] * 1000:.0f} ms = {times['status'] / floor:.2f}x floor "
                                         "(target <= 1.5x)"),
        ("status DOMAIN --model M --require, cold", f"{times['one'] * 1000:.0f} ms = {times['one'] / floor:.2f}x "
                                                    "floor (target <= 1.2x)"),
        ("decisions() in process, summaries", f"{t_fast * 1000:.0f} ms for {len(fast):,} domains ({counted:,} records "
                                              "counted; equal to the rows' answers)"),
        ("decisions() in process, every row", f"{t_slow * 1000:.0f} ms = {t_slow / t_fast:.1f}x the summaries"),
    ]


def in_process(url: str):
    """(summary decisions, row-by-row decisions, seconds each): best of 3, the answers asserted equal."""
    from graduation.policy.model import load_policy, packaged_policy_path
    from graduation.service.decisions import decisions
    from graduation.store import Database

    db = Database(url)
    policy = load_policy(packaged_policy_path())
    timings = {}
    results = {}
    for rows in (False, True):
        best = None
        for _ in range(3):
            start = time.perf_counter()
            results[rows] = decisions(db, policy, from_rows=rows)
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        timings[rows] = best
    assert [d.decision.to_dict(facts=True) for d in results[False]] == \
        [d.decision.to_dict(facts=True) for d in results[True]]
    db.dispose()
    return results[False], results[True], timings[False], timings[True]


def bench_decide(count: int) -> list[tuple[str, str]]:
    from graduation.policy import decide
    from graduation.policy.engine import conclude
    from graduation.policy.facts import finish, fold
    from graduation.policy.model import load_policy, packaged_policy_path
    from graduation.policy.phase import decide_phase
    from graduation.service.decisions import paused_gc
    from policy import corpus

    policy = load_policy(packaged_policy_path())
    items = corpus(count)
    folded = [(spec, fold(ev)) for spec, ev in items]

    def from_folded():
        out = []
        for spec, f in folded:
            summary = finish(spec, f)
            out.append(conclude(spec, summary.facts, decide_phase(summary, policy.thresholds[spec.risk._value_]),
                                summary.evidence_hashes, policy))
        return out

    def from_records():
        return [decide(spec, ev, policy) for spec, ev in items]

    rows = []
    answers = {}
    for name, fn in (("decide from folded evidence (summaries)", from_folded),
                     ("decide from the records (fold + decide)", from_records)):
        best = None
        for _ in range(3):
            gc.collect()
            start = time.perf_counter()
            with paused_gc():  # as `decisions()` decides a registry's domains
                answers[name] = fn()
            elapsed = time.perf_counter() - start
            best = elapsed if best is None else min(best, elapsed)
        assert len(answers[name]) == count
        rows.append((name, f"{count:,} domains in {best:.2f} s = {count / best:,.0f} decisions/s "
                           "(target >= 40,000/s)"))
    first, second = answers.values()
    assert [d.id for d in first] == [d.id for d in second]
    return rows


def bench_appends(url: str, n: int) -> tuple[float, float]:
    """(human audits/s, evaluation rounds of a model/s): one transaction each, summary maintained."""
    from graduation.policy.testing import complete_eval
    from graduation.records import EvalRecord, HumanAuditRecord
    from graduation.spec import DomainSpec
    from graduation.store import Database
    from graduation.records import LoadedDomain
    from graduation.store.domains import register
    from graduation.store.evidence import add_evidence
    from graduation.store.models import register_model

    db = Database(url)
    tag = uuid.uuid4().hex[:8]
    spec = DomainSpec.model_validate({"domain": f"append-{tag}", "title": "a", "risk": "low", "owners": ["o"]})
    with db.write() as s:
        register(s, LoadedDomain(spec, "domains/a.yaml", {}))
        model = register_model(s, f"append-{tag}", digest="sha256:" + tag * 8, kind="external")[0]
    rates = []
    for kind in ("human_audit", "eval"):
        start = time.perf_counter()
        for i in range(n):
            with db.write() as s:
                if kind == "human_audit":
                    add_evidence(s, spec.domain, kind, HumanAuditRecord(auditor=f"p{i}", checked=1, held=1))
                else:
                    rec = EvalRecord.model_validate(complete_eval({"n": 400, "passed": 390, "round": i + 1}))
                    add_evidence(s, spec.domain, kind, rec, model_id=model.id, round=i + 1)
        rates.append(n / (time.perf_counter() - start))
    with db.read() as s:
        from graduation.store.auditlog import verify

        result = verify(s)
        assert result.ok and result.entries >= 2 * n, result
    db.dispose()
    return rates[0], rates[1]


def main() -> None:
    quick = "--quick" in sys.argv
    n_domains, n_evidence = (100, 10_000) if quick else (1000, 100_000)
    print(f"machine load (uptime): {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} CPUs")
    report("integrity: status from checked summaries (ratios to the same run's floor)",
           bench_cli(n_domains, n_evidence, repeat=3 if quick else 5))
    report("decide throughput", bench_decide(1000 if quick else 10_000))
    n = 200 if quick else 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        audits, rounds = bench_appends(f"sqlite:///{tmp}/a.db", n)
        rows.append(("chained appends, SQLite", f"{audits:,.0f} human audits/s, {rounds:,.0f} rounds/s "
                                                f"({n} transactions each, summary kept)"))
    pg = os.environ.get("REGISTRY_DB_URL", "")
    if pg.startswith("postgresql"):
        audits, rounds = bench_appends(pg, n)
        rows.append(("chained appends, PostgreSQL", f"{audits:,.0f} human audits/s, {rounds:,.0f} rounds/s "
                                                    f"({n} transactions each, summary kept)"))
    else:
        rows.append(("chained appends, PostgreSQL", "not run (use scripts/with-postgres.sh)"))
    report("evidence appends with chaining", rows)


if __name__ == "__main__":
    main()
