"""What integrity costs: every record chained, every row re-hashed when a decision reads it.

Printed side by side, as ratios to the start-up floor `registry list --json` on the same registry in the
same run (cold processes, alternating):

1. `registry status --json` over 1,000 domains and 100,000 chained evidence records (target <= 1.5x floor);
2. `registry status DOMAIN --require deploy:sandbox`, one domain (target <= 1.2x floor);
3. in-process `decide` over 10,000 domains: decisions/s (target >= 40,000/s);
4. evidence appends through `add_evidence` (row + chained entry, one transaction each): records/s on
   SQLite, and on PostgreSQL when REGISTRY_DB_URL points at one (`scripts/with-postgres.sh`).

Counts are asserted: every domain is decided, every record is read (`evidence` hashes per decision).
Run: `.venv/bin/python benchmarks/integrity.py` (`--quick` for 100 domains / 10,000 records).
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

    url = url or f"sqlite:///{root / 'registry' / 'registry.db'}"
    db = Database(url)
    rng = random.Random(11)
    per_domain = n_evidence // n_domains
    with db.write() as session:
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
            record_hash = evidence_record_hash(uid=uid, domain=spec.domain, version=1, basis=basis, kind=kind,
                                               summary=data, model=None, round=rnd, data_hash=None, author=author)
            seq += 1
            created = f"2026-01-01T00:00:00.{seq % 1000000:06d}Z"
            payload = {"record": "evidence", "key": uid, "digest": record_hash}
            digest = compute_hash(seq, "evidence", spec.domain, created, payload, prev)
            entries.append({"seq": seq, "kind": "evidence", "domain": spec.domain, "created_at": created,
                            "payload_json": canonical(payload), "prev_hash": prev, "entry_hash": digest})
            prev = digest
            rows.append({"uid": uid, "domain": spec.domain, "domain_version": 1, "basis_hash": basis, "kind": kind,
                         "model": None, "round": rnd, "data_hash": None, "author": author, "created_at": utcnow(),
                         "summary_json": json.dumps(data, sort_keys=True, ensure_ascii=False),
                         "record_hash": record_hash, "entry_hash": digest})
    with db.write() as session:
        for start in range(0, len(rows), 5000):
            session.execute(insert(AuditEntryRow), entries[start:start + 5000])
            session.execute(insert(EvidenceRow), rows[start:start + 5000])
    db.dispose()
    return url


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
        env = {**os.environ, "REGISTRY_DB_URL": url, "GRADUATION_PROJECT": str(root)}
        out = subprocess.run([str(registry), "status", "--json"], cwd=root, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"registry status failed: {out.stderr}")
        data = json.loads(out.stdout)
        assert len(data["decisions"]) == n_domains, len(data["decisions"])
        seen = sum(len(d["evidence"]) for d in data["decisions"]) if "evidence" in data["decisions"][0] else None
        assert seen in (None, n_evidence), (seen, n_evidence)
        one = [str(registry), "status", "domain-00007", "--require", "deploy:sandbox", "--json"]
        check = subprocess.run(one, cwd=root, env=env, capture_output=True, text=True)
        assert check.returncode in (0, 1), check.stderr
        times = _alternate({"floor": [str(registry), "list", "--json"],
                            "status": [str(registry), "status", "--json"], "one": one}, env, root, repeat)
    floor = times["floor"]
    return [
        ("domains / chained evidence records", f"{n_domains:,} / {n_evidence:,} (set up in {setup:.0f} s)"),
        ("registry list --json (floor)", f"{floor * 1000:.0f} ms"),
        ("registry status --json, cold", f"{times['status'] * 1000:.0f} ms = {times['status'] / floor:.2f}x floor "
                                         "(target <= 1.5x)"),
        ("status DOMAIN --require, cold", f"{times['one'] * 1000:.0f} ms = {times['one'] / floor:.2f}x floor "
                                          "(target <= 1.2x)"),
    ]


def bench_decide(count: int) -> list[tuple[str, str]]:
    from graduation.policy import decide
    from graduation.policy.model import load_policy, packaged_policy_path
    from policy import corpus

    policy = load_policy(packaged_policy_path())
    items = corpus(count)
    gc.collect()
    start = time.perf_counter()
    decisions = [decide(spec, ev, policy) for spec, ev in items]
    elapsed = time.perf_counter() - start
    assert len(decisions) == count
    rate = count / elapsed
    return [("decide, in process", f"{count:,} domains in {elapsed:.2f} s = {rate:,.0f} decisions/s "
                                   "(target >= 40,000/s)")]


def bench_appends(url: str, n: int) -> float:
    from graduation.records import HumanAuditRecord
    from graduation.spec import DomainSpec
    from graduation.store import Database
    from graduation.records import LoadedDomain
    from graduation.store.domains import register
    from graduation.store.evidence import add_evidence

    db = Database(url)
    spec = DomainSpec.model_validate({"domain": "append-bench", "title": "a", "risk": "low", "owners": ["o"]})
    with db.write() as s:
        register(s, LoadedDomain(spec, "domains/a.yaml", {}))
    start = time.perf_counter()
    for i in range(n):
        with db.write() as s:
            add_evidence(s, "append-bench", "human_audit", HumanAuditRecord(auditor=f"p{i}", checked=1, held=1))
    elapsed = time.perf_counter() - start
    with db.read() as s:
        from graduation.store.auditlog import verify

        result = verify(s)
        assert result.ok and result.entries >= n, result
    db.dispose()
    return n / elapsed


def main() -> None:
    quick = "--quick" in sys.argv
    n_domains, n_evidence = (100, 10_000) if quick else (1000, 100_000)
    report("integrity: status and decide with every row re-hashed (ratios to the same run's floor)",
           bench_cli(n_domains, n_evidence, repeat=3 if quick else 5))
    report("decide throughput", bench_decide(1000 if quick else 10_000))
    n = 200 if quick else 1000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("chained appends, SQLite", f"{bench_appends(f'sqlite:///{tmp}/a.db', n):,.0f} records/s "
                                                f"({n} transactions)"))
    pg = os.environ.get("REGISTRY_DB_URL", "")
    if pg.startswith("postgresql"):
        rows.append(("chained appends, PostgreSQL", f"{bench_appends(pg, n):,.0f} records/s ({n} transactions)"))
    else:
        rows.append(("chained appends, PostgreSQL", "not run (use scripts/with-postgres.sh)"))
    report("evidence appends with chaining", rows)


if __name__ == "__main__":
    main()
