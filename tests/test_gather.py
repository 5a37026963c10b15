"""Gathering evidence end to end: domains on disk, the registry, the pool and the verdict cache."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest

from graduation.errors import DataError, InputError
from graduation.service.data_audit import audit_data
from graduation.service.validation import check_verifiers
from graduation.service.evaluation import evaluate
from graduation.service.project import load_project_domain
from graduation.store import Database
from graduation.store.domains import register
from graduation.store.evidence import list_evidence
from graduation.verifiers import VerifierPool
from tests.modelreg import registered

PHOTO = """\
domain: photo
title: Exposure settings
risk: high
owners: [team@example.org]
task: {prompt_field: prompt, answer_field: answer, id_field: id}
ground_truth:
  - {name: manual, path: data/photo/manual.jsonl, provenance: expert}
  - name: distilled
    path: data/photo/distilled.jsonl
    provenance: model_generated
    derived_from: manual
    generated_by: {model: helper-7b}
verifiers:
  - {name: settings, kind: exact, role: substance, controls: data/photo/wrong.jsonl}
  - name: shape
    kind: regex
    role: format
    options: {pattern: '^exposure = [^,]+, aperture = .+$'}
slices:
  - {name: night, field: light, equals: night}
  - {name: bright, when: 'lux > 500'}
"""


def write(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def manual_rows(n=100):
    return [{"id": f"p{i}", "prompt": f"Scene {i}: what settings?", "light": "night" if i % 4 == 0 else "day",
             "lux": 100 * (i % 10), "answer": f"exposure = {i % 13 + 1}, aperture = {i % 7 + 2}"} for i in range(n)]


def register_domain(project: Path, db_url: str, text: str, name: str) -> Database:
    path = project / "domains" / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    db = Database(db_url)
    with db.write() as session:
        register(session, load_project_domain(path, project))
    return db


@pytest.fixture
def photo(project: Path, db_url: str):
    data = project / "domains" / "data" / "photo"
    manual = manual_rows()
    write(data / "manual.jsonl", manual)
    rng = random.Random(3)
    planted = set(rng.sample(range(100), 40))
    distilled = []
    for i, row in enumerate(manual):
        answer = row["answer"]
        if i in planted:
            answer = answer.replace(", aperture", " * golden_hour_sun, aperture")
        distilled.append({**row, "id": f"d{i}", "answer": answer})
    write(data / "distilled.jsonl", distilled)
    write(data / "wrong.jsonl", [{"id": "p1", "output": "exposure = 3, aperture = 3"}])
    db = register_domain(project, db_url, PHOTO, "photo")
    return db


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, timeout=3) as p:
        yield p


def test_audit_flags_golden_hour_sun_with_rate_failures_shape_gap_and_lineage(photo, project, pool):
    result = audit_data(photo, project, "photo", project / "domains/data/photo/distilled.jsonl", pool=pool)
    record = result.record
    assert record.rows == 100
    assert [s.symbol for s in record.symbols] == ["golden_hour_sun"]
    assert record.symbols[0].rate == pytest.approx(0.40, abs=0.01)
    assert record.substance_failed == 40 and record.substance_fail_rate == pytest.approx(0.4)
    assert record.format_pass_rate == 1.0 and record.shape_gap == pytest.approx(0.4)
    assert (record.provenance, record.lineage_depth, record.generators) == \
        ("model_generated", 1, ["helper-7b"])
    assert record.ungraduated_generators == []  # looked up when deciding, never declared
    night = next(s for s in record.slices if s.name == "night")
    assert night.n == 25
    with photo.read() as session:
        kinds = [e.kind for e in list_evidence(session, "photo")]
    assert kinds == ["verifier_validation", "data_audit"]


def test_audit_of_an_undeclared_file_takes_lineage_from_options(photo, project, pool, tmp_path):
    rows = [{"prompt": f"Scene {i}: what settings?", "answer": f"exposure = {i % 13 + 1}, aperture = {i % 7 + 2}"
             + (" with lunarDriftCoef" if i % 5 == 0 else "")} for i in range(100)]
    path = write(tmp_path / "candidate.jsonl", rows)
    result = audit_data(photo, project, "photo", path, generated_by="new-model", derived_from="distilled",
                        pool=pool, store=False)
    record = result.record
    assert record.lineage_depth == 2 and record.generators == ["new-model", "helper-7b"]
    assert [(s.symbol, s.rate) for s in record.symbols] == [("lunarDriftCoef", 0.2)]
    assert record.substance_failed == 20


def test_evaluate_outputs_slices_and_consistency(photo, project, pool, tmp_path):
    rows = []
    for row in manual_rows()[:50]:
        for k in range(2):
            wrong = row["light"] == "night" and k == 1
            rows.append({"id": row["id"], "output": "exposure = 99, aperture = 1" if wrong else row["answer"]})
    path = write(tmp_path / "out.jsonl", rows)
    result = evaluate(photo, project, "photo", path, model=registered(photo, "m1"), pool=pool)
    record = result.record
    assert (record.n, record.passed) == (100, 87)
    night = next(s for s in record.slices if s.name == "night")
    assert (night.n, night.passed) == (26, 13)
    assert record.consistency.k == 2 and record.consistency.flip_rate == pytest.approx(13 / 50)
    with photo.read() as session:
        stored = list_evidence(session, "photo", kinds=["eval"])
    assert stored[0].record == record and stored[0].model == "m1@1" and stored[0].round == 1  # assigned here
    assert record.round == 1 and record.model == "m1@1" and stored[0].model_key == "m1@1"
    assert stored[0].data_hash == result.data_hash


def test_malformed_rows_are_reported_by_line_and_nothing_is_written(photo, project, pool, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "p1", "output": "x"}\n{"id": "p2", "output": \n{"id": "nope", "output": "y"}\n'
                    '{"id": "p3"}\n')
    with pytest.raises(DataError) as err:
        evaluate(photo, project, "photo", path, model=registered(photo, "m"), pool=pool)
    message = str(err.value)
    assert "bad.jsonl:2" in message and "bad.jsonl:3" in message and "bad.jsonl:4" in message
    with photo.read() as session:
        assert list_evidence(session, "photo") == []


def test_changed_ground_truth_must_be_registered_again(photo, project, pool):
    path = project / "domains/data/photo/manual.jsonl"
    path.write_text(path.read_text() + json.dumps({"id": "new", "prompt": "n", "answer": "a"}) + "\n")
    with pytest.raises(InputError, match="changed since domain 'photo' v1 was registered"):
        evaluate(photo, project, "photo", path, model=registered(photo, "m"), pool=pool)


MATH = """\
domain: algebra
title: Algebra
risk: low
owners: [team@example.org]
ground_truth:
  - {name: book, path: data/algebra.jsonl, provenance: expert}
verifiers:
  - {name: equal, kind: math, role: substance}
"""


def test_second_scan_is_served_from_the_cache(project, db_url, pool, tmp_path):
    rows = [{"prompt": f"q{i}", "answer": f"\\frac{{{i}}}{{{i + 1}}}"} for i in range(1, 61)]
    write(project / "domains/data/algebra.jsonl", rows)
    db = register_domain(project, db_url, MATH, "algebra")
    outputs = write(tmp_path / "o.jsonl", [{"prompt": r["prompt"], "output": f"${r['answer']}$" if i % 2 else "$7$"}
                                           for i, r in enumerate(rows)])
    first = evaluate(db, project, "algebra", outputs, model=registered(db, "m"), pool=pool)
    # the same file for the same model is not a second round (issue 12): scan it again without recording
    second = evaluate(db, project, "algebra", outputs, model=registered(db, "m"), pool=pool, store=False)
    assert first.cache_hits == 0 and first.verified == 60
    assert second.cache_hits == 60 and second.verified == 0
    assert (first.record.round, second.record.round) == (1, None)  # the registry numbers recorded rounds only
    assert first.record.model_copy(update={"round": None}) == second.record and first.record.passed == 30
    assert second.validation_ran is False


def test_reasoning_gym_pass_rate_matches_its_own_scorer(project, db_url, pool, tmp_path):
    import reasoning_gym

    data = reasoning_gym.create_dataset("basic_arithmetic", size=60, seed=5)
    entries = [dict(data[i], id=f"e{i}") for i in range(60)]
    write(project / "domains/data/gym.jsonl", entries)
    db = register_domain(project, db_url, """\
        domain: gym
        title: Basic arithmetic
        risk: low
        owners: [team@example.org]
        task: {prompt_field: question, answer_field: answer, id_field: id}
        ground_truth:
          - {name: gym, path: data/gym.jsonl, provenance: verifier_checked}
        verifiers:
          - {name: score, kind: reasoning_gym, role: substance, options: {dataset: basic_arithmetic}}
        """, "gym")
    rng = random.Random(9)
    outputs = []
    for e in entries:
        answer = e["answer"]
        choice = rng.random()
        if choice < 0.25:
            answer = str(int(answer) + rng.choice([-1, 1, 10]))         # planted wrong answer
        elif choice < 0.35:
            answer = f"The answer is {answer}"                          # partial credit, not a pass
        outputs.append({"id": e["id"], "output": answer})
    path = write(tmp_path / "gym_out.jsonl", outputs)
    record = evaluate(db, project, "gym", path, model=registered(db, "m"), pool=pool).record
    scorer = data.score_answer
    expected = sum(scorer(o["output"], e) >= 1.0 for o, e in zip(outputs, entries))
    assert record.passed == expected and record.pass_rate == expected / 60
    assert 0 < expected < 60


ALWAYS = """\
domain: lenient
title: A verifier that cannot fail
risk: low
owners: [team@example.org]
ground_truth:
  - {name: book, path: data/lenient.jsonl, provenance: expert}
verifiers:
  - name: anything-goes
    kind: python
    role: substance
    options: {function: "lenient_checks:always"}
    controls: data/lenient_wrong.jsonl
  - {name: strict, kind: exact, role: substance, controls: data/lenient_wrong.jsonl}
"""


def test_an_always_true_verifier_is_untrustworthy(project, db_url, pool):
    (project / "lenient_checks.py").write_text("def always(output, reference, row):\n    return True\n")
    write(project / "domains/data/lenient.jsonl", [{"prompt": f"q{i}", "answer": str(i * 7)} for i in range(20)])
    write(project / "domains/data/lenient_wrong.jsonl", [{"prompt": "q3", "output": "22"}, {"prompt": "q4", "output": "0"}])
    db = register_domain(project, db_url, ALWAYS, "lenient")
    record = check_verifiers(db, project, "lenient", pool=pool).record
    yes, strict = record.verifiers
    assert not yes.trustworthy
    assert yes.controls_rejected == 0 and yes.controls > 2
    assert any("data/lenient_wrong.jsonl:1" in c for c in yes.leaked_controls)
    assert any("declared known-wrong" in r for r in yes.reasons)
    assert strict.trustworthy and strict.references_accepted == 20 and strict.controls_rejected == strict.controls


def test_hostile_outputs_in_a_file_are_errors_or_failures_not_crashes(project, db_url, pool, tmp_path):
    rows = [{"prompt": f"q{i}", "answer": str(i)} for i in range(6)]
    write(project / "domains/data/algebra.jsonl", rows)
    db = register_domain(project, db_url, MATH, "algebra")
    path = tmp_path / "hostile.jsonl"
    lines = [
        json.dumps({"prompt": "q0", "output": "x" * 10_000_000}).encode(),
        json.dumps({"prompt": "q1", "output": "(" * 3000 + "1" + ")" * 3000}).encode(),
        json.dumps({"prompt": "q2", "output": f"__import__('os').system('touch {tmp_path / 'pwned'}')"}).encode(),
        json.dumps({"prompt": "q3", "output": "$9^{9^{9^{9^{9^{9^{9}}}}}}$"}).encode(),
        b'{"prompt": "q4", "output": "\xff\xfe 4"}',
        json.dumps({"prompt": "q5", "output": "$5$"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    record = evaluate(db, project, "algebra", path, model=registered(db, "m"), pool=pool).record
    assert (record.n, record.passed) == (6, 1)
    assert record.errors >= 2  # invalid UTF-8 and the hanging LaTeX at least
    assert not (tmp_path / "pwned").exists()
    with db.read() as session:
        from graduation.store.verdicts import count

        assert count(session) == 4  # errors are not cached: they are retried next time


def test_training_rounds_from_rows_in_memory_and_csv_outputs(photo, project, pool, tmp_path):
    rows = [{"id": r["id"], "output": r["answer"] if i % 4 else "exposure = 0, aperture = 0"}
            for i, r in enumerate(manual_rows(40))]
    result = evaluate(photo, project, "photo", rows, model=registered(photo, "ckpt-10"), kind="training_round",
                      job="job-1", step=10, pool=pool)
    record = result.record
    assert (record.n, record.passed, record.job, record.step) == (40, 30, "job-1", 10)
    assert record.outputs_file == "<rows>" and result.data_hash
    with photo.read() as session:
        (stored,) = list_evidence(session, "photo", kinds=["training_round"])
    assert stored.round == 1 and stored.model == "ckpt-10@1"
    csv_path = tmp_path / "out.csv"
    csv_path.write_text("id,output\n" + "".join(f'{r["id"]},"{r["output"]}"\n' for r in rows))
    again = evaluate(photo, project, "photo", csv_path, model=registered(photo, "ckpt-10"), pool=pool, store=False).record
    assert (again.n, again.passed) == (40, 30)
    with pytest.raises(InputError, match="eval or training_round"):
        evaluate(photo, project, "photo", rows, model=registered(photo, "m"), kind="data_audit", pool=pool)


def test_auditing_a_trusted_source_does_not_flag_its_own_vocabulary(project, db_url, pool):
    book = [{"prompt": f"q{i}", "answer": f"set iso_speed to {i}" if i % 2 else str(i)} for i in range(40)]
    write(project / "domains/data/iso_book.jsonl", book)
    write(project / "domains/data/iso_eval.jsonl", [{"prompt": "e1", "answer": "7"}])
    db = register_domain(project, db_url, """\
        domain: iso
        title: ISO
        risk: low
        owners: [team@example.org]
        ground_truth:
          - {name: book, path: data/iso_book.jsonl, provenance: expert}
          - {name: held, path: data/iso_eval.jsonl, provenance: expert, split: eval}
        verifiers:
          - {name: same, kind: exact, role: substance}
        """, "iso")
    record = audit_data(db, project, "iso", project / "domains/data/iso_book.jsonl", pool=pool, store=False).record
    assert record.symbols == [] and record.substance_failed == 0
    assert (record.provenance, record.lineage_depth) == ("expert", 0)


def test_cache_keys_cover_identity_reference_output_and_row():
    from graduation.store.verdicts import cache_key

    base = cache_key("id", "1", "1")
    assert base == cache_key("id", "1", "1")
    assert len({base, cache_key("id2", "1", "1"), cache_key("id", "2", "1"), cache_key("id", "1", "2"),
                cache_key("id", "1", "1", {"metadata": {"a": 1}}), cache_key("id", "11", "")}) == 6
    assert cache_key("id", "1", "\udcff") != cache_key("id", "1", "\udcfe")  # invalid UTF-8 hashes too


def test_the_shipped_reasoning_gym_domain_matches_reasoning_gyms_scorer(tmp_path, pool):
    """The example domain `arith-reasoning-gym`, read in place: its outputs score exactly as reasoning-gym says."""
    from graduation.rows import read_rows
    from tests.conftest import REPO

    domain_file = REPO / "domains" / "arith-reasoning-gym.yaml"
    if not domain_file.exists():
        pytest.skip("the example domains are not in this checkout")
    from reasoning_gym.factory import DATASETS

    db = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    with db.write() as session:
        register(session, load_project_domain(domain_file, REPO))
    outputs = REPO / "domains/data/arith-reasoning-gym/outputs.jsonl"
    record = evaluate(db, REPO, "arith-reasoning-gym", outputs, model=registered(db, "m"), pool=pool, store=False).record
    entries = {r["id"]: r for r in read_rows(REPO / "domains/data/arith-reasoning-gym/eval.jsonl")}
    cls, config = DATASETS["basic_arithmetic"]
    scorer = cls(config=config(size=1)).score_answer
    rows = read_rows(outputs)
    expected = sum(scorer(r["output"], entries[r["id"]]) >= 1.0 for r in rows)
    assert record.n == len(rows)
    assert record.passed == expected and 0 < expected < len(rows)
