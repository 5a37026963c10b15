"""The Ray engine counts exactly what the local engine counts (a local Ray with 2 CPUs, started once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from graduation.service.data_audit import audit_data
from graduation.service.evaluation import evaluate
from graduation.store.evidence import list_evidence
from graduation.verifiers import VerifierPool
from tests.modelreg import registered
from tests.test_gather import register_domain, write
from tests.modelreg import registered

ray = pytest.importorskip("ray")

MIXED = """\
domain: mixed
title: Every kind of verifier
risk: high
owners: [team@example.org]
task: {prompt_field: prompt, answer_field: answer, id_field: id}
ground_truth:
  - {name: book, path: data/mixed.jsonl, provenance: expert}
  - name: copies
    path: data/copies.jsonl
    provenance: model_generated
    derived_from: book
    generated_by: {model: helper-7b}
verifiers:
  - {name: same, kind: exact, role: substance}
  - {name: number, kind: numeric, role: substance, options: {abs_tol: 0.01}}
  - {name: equal, kind: math, role: substance}
  - {name: judge, kind: python, role: substance, options: {function: "judges:judge"}}
  - {name: shape, kind: regex, role: format, options: {pattern: '^-?[0-9]+$'}}
slices:
  - {name: even, field: parity, equals: even}
  - {name: big, when: 'size > 5'}
"""

JUDGES = """\
def judge(output, reference, row):
    if output == "boom":
        raise ValueError("the judge refuses this output")
    if output == "hang":
        while True:
            pass
    return output.strip() == str(reference)
"""


def book(n=40):
    return [{"id": f"q{i}", "prompt": f"What is {i} * 3?", "answer": str(i * 3),
             "parity": "even" if i % 2 == 0 else "odd", "size": i % 10} for i in range(n)]


def outputs(k=3, n=40):
    """k samples per prompt: right, wrong, words around the answer, an error-raising and a hanging output."""
    rows = []
    for s in range(k):
        for i in range(n):
            answer = str(i * 3)
            choice = (i * 7 + s) % 11
            output = {0: str(i * 3 + 1), 1: f"it is {answer} golden_hour_sun", 2: "boom"}.get(choice, answer)
            if i == 5 and s == 0:
                output = "hang"
            if choice == 3:
                output = answer + " warp_field_k"
            rows.append({"id": f"q{i}", "output": output})
    return rows


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def mixed(project, db_url):
    (project / "judges.py").write_text(JUDGES)
    write(project / "domains/data/mixed.jsonl", book())
    write(project / "domains/data/copies.jsonl",
          [{**r, "id": f"c{i}", "answer": r["answer"] + (" golden_hour_sun" if i % 3 == 0 else "")}
           for i, r in enumerate(book())])
    db = register_domain(project, db_url, MIXED, "mixed")
    registered(db, "m")  # rounds belong to a registered model version
    return db


def _summary(record):
    return record.model_dump(mode="json")


def _without_round(record):
    """The record but its round: the registry numbers rounds per model version as it stores them, so two
    stored runs (or a stored run and an unstored one) differ there and nowhere else."""
    return {k: v for k, v in _summary(record).items() if k != "round"}


def test_ray_records_are_the_local_records(local_ray, mixed, project, tmp_path):
    from graduation.service.engines.ray_engine import RayEngine

    path = write(tmp_path / "outputs.jsonl", outputs())
    with VerifierPool(2, timeout=8.0) as pool:
        local = evaluate(mixed, project, "mixed", path, model="m", pool=pool, store=False)
        engine = RayEngine(chunk_rows=16, min_range_bytes=512)
        remote = evaluate(mixed, project, "mixed", path, model="m", pool=pool, store=False, engine=engine)
    assert engine.chunks >= 8  # the samples of a prompt are spread over chunks, merged back by prompt
    assert _summary(remote.record) == _summary(local.record)
    record = local.record
    assert record.errors > 0 and 0 < record.passed < record.n == 120
    assert record.consistency is not None and record.consistency.k == 3
    assert {s.symbol for s in record.symbols} >= {"golden_hour_sun", "warp_field_k"}
    judge = next(v for v in record.verifiers if v.name == "judge")
    assert judge.errors >= 4  # the raising outputs and the hanging one
    assert remote.verified == local.verified and remote.cache_hits == 0


def test_audit_of_a_parquet_file_in_many_chunks_is_the_local_audit(local_ray, mixed, project, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from graduation.service.engines.ray_engine import RayEngine

    rows = [{"id": r["id"], "answer": r["output"]} for r in outputs(k=1) if r["output"] != "hang"]
    rows += [{"id": f"new{i}", "answer": str(i)} for i in range(5)]  # no reference in the ground truth
    path = tmp_path / "candidate.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=9)
    engine = RayEngine(chunk_rows=4)
    with VerifierPool(2, timeout=30.0) as pool:
        local = audit_data(mixed, project, "mixed", path, generated_by="helper-7b", pool=pool, store=False)
        remote = audit_data(mixed, project, "mixed", path, generated_by="helper-7b", pool=pool, store=False,
                            engine=engine)
    assert engine.chunks >= 10  # row groups of 9 rows, chunks of 4: merged back in order
    assert _summary(remote.record) == _summary(local.record)
    assert local.record.errors >= 5 and local.record.symbols


@pytest.mark.slow
def test_malformed_rows_are_reported_as_locally_and_nothing_is_written(local_ray, mixed, project, tmp_path):
    from graduation.service.engines.ray_engine import RayEngine
    from graduation.errors import DataError

    lines = [json.dumps(r) for r in outputs(k=2)]
    lines[30] = "{oops"
    lines[61] = json.dumps({"id": "q1", "answer": "3"})  # no output field
    lines[70] = "[1, 2]"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    messages = []
    for engine in (None, RayEngine(chunk_rows=5, min_range_bytes=512)):
        with pytest.raises(DataError) as err, VerifierPool(2, timeout=8.0) as pool:
            evaluate(mixed, project, "mixed", path, model="m", engine=engine, pool=pool)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "bad.jsonl:31: not valid JSON" in messages[1] and "bad.jsonl:62: no 'output' field" in messages[1]
    assert "bad.jsonl:71: expected a JSON object" in messages[1]
    with mixed.read() as session:
        assert not list_evidence(session, "mixed", kinds=["eval"])


def test_the_ray_engine_refuses_what_it_cannot_read(mixed, project, tmp_path):
    from graduation.service.engines import engine_for
    from graduation.errors import InputError

    csv = tmp_path / "out.csv"
    csv.write_text("id,output\nq1,3\n")
    with pytest.raises(InputError, match="JSONL or Parquet"):
        evaluate(mixed, project, "mixed", csv, model="m", engine=engine_for("ray"))
    with pytest.raises(InputError, match="reads a file"):
        evaluate(mixed, project, "mixed", [{"id": "q1", "output": "3"}], model="m", engine=engine_for("ray"))
    with pytest.raises(InputError, match="ray://HOST:PORT"):
        engine_for("ray", address="http://head:8265")
    with pytest.raises(InputError, match="needs --engine ray"):
        engine_for("local", address="auto")
    with pytest.raises(InputError, match="not an engine"):
        engine_for("spark")


KILLER = JUDGES + """
def judge_or_kill(output, reference, row):
    # Once per marker: kill the Ray actor this check runs under (the nearest ancestor named ray::...).
    import os, pathlib, signal
    marker = pathlib.Path({marker!r})
    if output == "kill-actor" and not marker.exists():
        actor = os.getppid()
        while actor > 1:
            with open(f"/proc/{{actor}}/cmdline", "rb") as fh:
                if fh.read().startswith(b"ray::"):
                    break
            with open(f"/proc/{{actor}}/stat") as fh:
                actor = int(fh.read().rsplit(")", 1)[1].split()[1])
        assert actor > 1, "not running under a Ray actor"
        marker.write_text(str(actor))
        os.kill(actor, signal.SIGKILL)
    return judge(output, reference, row)
"""


@pytest.fixture
def killer(project, db_url, tmp_path):
    marker = tmp_path / "killed"
    (project / "judges.py").write_text(KILLER.format(marker=str(marker)))
    write(project / "domains/data/mixed.jsonl", book())
    write(project / "domains/data/copies.jsonl", book()[:3])
    text = MIXED.replace('"judges:judge"', '"judges:judge_or_kill"')
    db = register_domain(project, db_url, text, "mixed")
    registered(db, "m")
    rows = [r for r in outputs(k=2) if r["output"] != "hang"]
    rows[50]["output"] = "kill-actor"
    return db, write(tmp_path / "outputs.jsonl", rows), marker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_an_actor_killed_mid_run_is_restarted_and_the_record_is_the_local_one(local_ray, killer, project):
    from graduation.service.engines.ray_engine import RayEngine

    db, path, marker = killer
    # the fault is injected by the verifier itself (it kills its Ray actor): that needs the actor's pid and a
    # marker file, which the sandbox rightly withholds, so this test runs the domain's code unsandboxed
    marker.write_text("local run: nothing to kill")
    with VerifierPool(2, timeout=30.0, sandbox="unsandboxed") as pool:
        local = evaluate(db, project, "mixed", path, model="m", pool=pool, store=False)
    marker.unlink()
    with VerifierPool(2, timeout=30.0, sandbox="unsandboxed") as pool:
        remote = evaluate(db, project, "mixed", path, model="m", pool=pool, engine=RayEngine(chunk_rows=10))
    killed = int(marker.read_text())
    assert not _alive(killed)
    assert _without_round(remote.record) == _without_round(local.record)
    assert (local.record.round, remote.record.round) == (None, 1)  # unstored; the first stored round of m@1
    with db.read() as session:
        assert len(list_evidence(session, "mixed", kinds=["eval"])) == 1


@pytest.mark.slow
def test_a_run_that_cannot_finish_writes_nothing(local_ray, killer, project):
    from graduation.service.engines.ray_engine import EngineError, RayEngine

    db, path, marker = killer
    with pytest.raises(EngineError, match="did not finish.*nothing was written"), \
            VerifierPool(2, timeout=30.0, sandbox="unsandboxed") as pool:
        evaluate(db, project, "mixed", path, model="m", pool=pool, engine=RayEngine(retries=0, chunk_rows=10))
    assert marker.exists() and not _alive(int(marker.read_text()))
    with db.read() as session:
        assert not list_evidence(session, "mixed")  # not even the verifier validation of this run


def _stored_eval(db):
    with db.read() as session:
        return [e.record for e in list_evidence(session, "mixed", kinds=["eval"])]


def test_cli_evaluate_on_ray_records_what_the_local_engine_records(local_ray, mixed, project, tmp_path, cli):
    path = write(tmp_path / "outputs.jsonl", [r for r in outputs(k=2) if r["output"] != "hang"])
    common = ("evaluate", "mixed", "--outputs", str(path), "--model", "m", "--timeout", "30", "--json")
    on_ray = cli(*common, "--engine", "ray")
    assert on_ray.exit_code == 0, on_ray.output
    # one file is one round of one model (issue 12): the local run records the same bytes for another model
    registered(mixed, "m2")
    here = cli(*[("m2" if a == "m" else a) for a in common])
    assert here.exit_code == 0, here.output
    first, second = _stored_eval(mixed)
    assert first.model == "m@1" and second.model == "m2@1"
    assert {**_summary(first), "model": None} == {**_summary(second), "model": None}
    bad = cli(*common, "--engine", "ray", "--address", "head:6379")
    assert bad.exit_code == 2 and "ray://HOST:PORT" in bad.output
    assert len(_stored_eval(mixed)) == 2


def test_local_runs_never_import_ray(mixed, project, db_url, tmp_path):
    path = write(tmp_path / "outputs.jsonl", [{"id": "q1", "output": "3"}])
    code = ("import sys; from graduation.cli import main\n"
            f"sys.argv=['registry','--project',{str(project)!r},'--db',{db_url!r},'evaluate','mixed','--outputs',"
            f"{str(path)!r},'--model','m','--json']\n"
            "try:\n main()\nexcept SystemExit as exc:\n print('EXIT', exc.code)\n"
            "print('RAY', sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300)
    assert "EXIT 0" in out.stdout and "RAY []" in out.stdout, out.stdout + out.stderr


@pytest.mark.slow
def test_the_registry_command_starts_and_stops_its_own_ray(mixed, project, db_url, tmp_path, registry_bin):
    path = write(tmp_path / "outputs.jsonl", [{"id": f"q{i}", "output": str(i * 3)} for i in range(40)])
    out = subprocess.run([str(registry_bin), "--project", str(project), "--db", db_url, "evaluate", "mixed",
                          "--outputs", str(path), "--model", "m", "--engine", "ray", "--json"],
                         capture_output=True, text=True, timeout=600, cwd=project)
    assert out.returncode == 0, out.stderr
    (record,) = _stored_eval(mixed)
    assert (record.n, record.passed) == (40, 40)


def test_parts_from_another_file_or_other_verifier_code_are_refused(mixed, project, tmp_path):
    """What the driver checks before merging: every byte range read, each as this machine holds it, and
    verifiers built on the nodes as they are built here (pure: no Ray)."""
    from graduation.service.engines.ray_engine import _range_digest, check_parts
    from graduation.errors import EngineError
    from graduation.service.context import load_context

    ctx = load_context(mixed, project, "mixed")
    path = write(tmp_path / "outputs.jsonl", outputs(k=1))
    size = path.stat().st_size
    identities = [v.identity for v in ctx.verifiers]

    def part(start, end, digest=None, ids=identities):
        unit = json.dumps({"start": start, "end": end, "sha256": digest or _range_digest(path, start, end)},
                          sort_keys=True)
        return {"unit": unit, "identities": ids}

    cut = size // 2
    check_parts([part(0, cut), part(cut, size)], ctx, path, "jsonl")  # the whole file, as held here
    with pytest.raises(EngineError, match=f"bytes {cut}..{size} were read by no Ray actor"):
        check_parts([part(0, cut)], ctx, path, "jsonl")
    with pytest.raises(EngineError, match="bytes 0..10 were read by no Ray actor"):
        check_parts([part(10, size)], ctx, path, "jsonl")
    with pytest.raises(EngineError, match=f"bytes {cut}..{size} read on a Ray node differ"):
        check_parts([part(0, cut), part(cut, size, digest="0" * 64)], ctx, path, "jsonl")
    other = list(identities)
    other[3] = "f" * 64  # the python verifier's module differs on a node
    with pytest.raises(EngineError, match="verifier.s. judge were built differently"):
        check_parts([part(0, size, ids=other)], ctx, path, "jsonl")
