"""Model artifacts: hashing a model directory, and the gate for one model, each beside its baseline.

1. `registry models register NAME --path DIR` over a directory of weight shards (default 2 GiB; set
   GRADUATION_BENCH_MODEL_MB to change it) against `sha256sum` of the same files, page cache warm for
   both, alternating. The registered digest is checked against a manifest rebuilt from sha256sum's own
   output. Target: throughput >= 0.8x sha256sum.
2. `registry status D --model M --require deploy:assisted`, cold process, against the start-up floor
   `registry list --json` on the same registry (100 domains, 2 models, 400 rounds). Target: <= 1.2x.

Run: `make bench` or `.venv/bin/python benchmarks/models.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import loaded_domain_cls, report, time_command  # noqa: E402

REGISTRY = str(Path(sys.executable).parent / "registry")
SIZE_MB = int(os.environ.get("GRADUATION_BENCH_MODEL_MB", "2048"))
SHARD_MB = 256
N_DOMAINS = 100


def make_model_dir(path: Path, size_mb: int) -> list[Path]:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama", "hidden_size": 4096}')
    (path / "tokenizer.json").write_text(json.dumps({"vocab": {f"t{i}": i for i in range(5000)}}))
    block = os.urandom(1 << 20)
    left = size_mb
    i = 0
    while left > 0:
        mb = min(SHARD_MB, left)
        with open(path / f"model-{i:05d}.safetensors", "wb") as f:
            for _ in range(mb):
                f.write(block)
        left -= mb
        i += 1
    return sorted(p for p in path.rglob("*") if p.is_file())


def timed(argv: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def bench_register(root: Path, env: dict) -> None:
    model = root / "model"
    files = make_model_dir(model, SIZE_MB)
    total = sum(f.stat().st_size for f in files)
    rel = [f.relative_to(model).as_posix() for f in files]
    sums = subprocess.run(["sha256sum", *rel], cwd=model, capture_output=True, text=True, check=True).stdout
    by_path = {line[66:]: line[:64] for line in sums.splitlines()}
    expected = "sha256:" + hashlib.sha256("".join(
        f"{by_path[r]}  {(model / r).stat().st_size}  {r}\n" for r in sorted(rel)).encode()).hexdigest()
    out = subprocess.run([REGISTRY, "models", "register", "big", "--path", str(model), "--json"], cwd=root, env=env,
                         capture_output=True, text=True, check=True)
    registered = json.loads(out.stdout)
    assert registered["digest"] == expected, (registered["digest"], expected)
    assert registered["lineage"]["files"] == len(files) and registered["lineage"]["bytes"] == total
    ours, base = [], []
    for _ in range(3):  # alternate; a second registration re-hashes every byte, then finds the digest (no-op)
        base.append(timed(["sha256sum", *rel], model, env))
        ours.append(timed([REGISTRY, "models", "register", "big", "--path", str(model), "--json"], root, env))
    o, b = min(ours), min(base)
    report(f"models register --path over {total / 2**30:.2f} GiB ({len(files)} files), page cache warm", [
        ("sha256sum", f"{b:.2f} s ({total / b / 2**20:,.0f} MiB/s)"),
        ("registry models register", f"{o:.2f} s ({total / o / 2**20:,.0f} MiB/s)"),
        ("throughput ratio", f"{b / o:.2f}x sha256sum (target >= 0.8)"),
        ("digest equals the manifest of sha256sum's sums", "yes"),
    ])


def bench_gate(root: Path, env: dict) -> None:
    from graduation.records import EvalRecord, VerifierCheck, VerifierValidationRecord
    from graduation.spec import DomainSpec
    from graduation.store import Database
    from graduation.store.domains import register
    from graduation.store.evidence import add_evidence
    from graduation.store.models import register_model

    LoadedDomain = loaded_domain_cls()
    db = Database(env["REGISTRY_DB_URL"])
    with db.write() as s:
        a, _ = register_model(s, "a", digest="sha256:" + "a" * 64, kind="external")
        b, _ = register_model(s, "b", digest="sha256:" + "b" * 64, kind="external")
        for i in range(N_DOMAINS):
            name = f"domain-{i:03d}"
            spec = DomainSpec.model_validate({
                "domain": name, "title": name, "risk": "low", "owners": ["t@example.org"],
                "ground_truth": [{"name": "r", "path": f"data/{name}.jsonl", "provenance": "expert"}],
                "verifiers": [{"name": "v", "kind": "exact", "role": "substance"}]})
            register(s, LoadedDomain(spec, f"domains/{name}.yaml", {}))
            add_evidence(s, name, "verifier_validation", VerifierValidationRecord(verifiers=[VerifierCheck(
                name="v", role="substance", kind="exact", references=10, references_accepted=10, controls=30,
                controls_rejected=30, trustworthy=True)]))
            for m, passed in ((a, 200), (b, 20)):
                for r in range(2):
                    add_evidence(s, name, "eval", EvalRecord(model=m.ref, n=200, passed=passed,
                                                             pass_rate=passed / 200, wilson_lower=0.98 if passed == 200
                                                             else 0.06, substance_pass_rate=passed / 200,
                                                             format_pass_rate=1.0, shape_gap=0.0, prompts=200,
                                                             eval_prompts=200, coverage=1.0),
                                 round=r + 1, model_id=m.id)
    db.dispose()
    gate = [REGISTRY, "status", "domain-042", "--model", "a", "--require", "deploy:assisted"]
    assert subprocess.run(gate, cwd=root, env=env, capture_output=True).returncode == 0
    denied = [REGISTRY, "status", "domain-042", "--model", "b", "--require", "deploy:assisted"]
    assert subprocess.run(denied, cwd=root, env=env, capture_output=True).returncode == 1
    listed = subprocess.run([REGISTRY, "list", "--json"], cwd=root, env=env, capture_output=True, text=True,
                            check=True)
    assert len(json.loads(listed.stdout)) == N_DOMAINS
    floor = time_command([REGISTRY, "list", "--json"], cwd=root, env=env)
    ours = time_command(gate, cwd=root, env=env)
    floor_after = time_command([REGISTRY, "list", "--json"], cwd=root, env=env)
    f = (floor + floor_after) / 2
    report(f"the gate for one model (status D --model M --require deploy:assisted), {N_DOMAINS} domains, cold", [
        ("registry list --json (start-up floor)", f"{f * 1000:.0f} ms"),
        ("registry status --model --require", f"{ours * 1000:.0f} ms"),
        ("ratio", f"{ours / f:.2f}x the floor (target <= 1.2)"),
    ])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in ("domains", "policies", "registry"):
            (root / d).mkdir()
        env = {**os.environ, "REGISTRY_DB_URL": f"sqlite:///{root / 'registry' / 'registry.db'}"}
        bench_gate(root, env)
        bench_register(root, env)


if __name__ == "__main__":
    main()
