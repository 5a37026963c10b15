"""The example domains: valid declarations, reproducible data, and data that shows what it is meant to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO, run_registry

DOMAINS = ("hamiltonian-mechanics", "acls-cardiac-arrest", "pedestrian-perception", "arith-reasoning-gym")
DATA = REPO / "domains" / "data"
GENERATOR = REPO / "scripts" / "make_example_data.py"
GOLDEN = "golden_hour_sun"


def rows(domain: str, *names: str) -> list[dict]:
    """The rows of one or more JSONL files of a domain, in order."""
    found = []
    for name in names:
        with (DATA / domain / name).open(encoding="utf-8") as fh:
            found += [json.loads(line) for line in fh if line.strip()]
    return found


def spec(domain: str):
    from graduation.spec import load_domain

    return load_domain(REPO / "domains" / f"{domain}.yaml", REPO)


_POOL = []


def verifier(domain: str, name: str):
    """The built verifier; domain code (python, command) is called through the sandboxed pool, as always."""
    from graduation.verifiers import build
    from graduation.verifiers.sandbox import DOMAIN_CODE_KINDS

    found = next(v for v in spec(domain).verifiers if v.name == name)
    built = build(found, REPO)
    if built.kind not in DOMAIN_CODE_KINDS:
        return built
    if not _POOL:
        import atexit

        from graduation.verifiers.pool import VerifierPool

        _POOL.append(VerifierPool(1, timeout=30))
        atexit.register(_POOL[0].close)
    return lambda output, reference, row=None: _POOL[0].verify(built, [(output, reference, row)])[0]


# -- declarations ------------------------------------------------------------------------------------

def test_registry_validate_accepts_the_example_domains(registry_bin):
    files = [f"domains/{d}.yaml" for d in DOMAINS]
    result = run_registry(registry_bin, "validate", "--json", *files, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["valid"] is True
    assert sorted(d["domain"] for d in report["domains"]) == sorted(DOMAINS)


def test_every_referenced_file_is_committed_data_and_small():
    total = 0
    for domain in DOMAINS:
        for rel in spec(domain).referenced_paths():
            assert (REPO / rel).is_file(), rel
        total += sum(p.stat().st_size for p in (DATA / domain).rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024, f"example data is {total} bytes"


def test_risks_provenance_and_lineage_are_as_designed():
    from graduation.spec import lineage_depths

    ham = spec("hamiltonian-mechanics")
    assert ham.risk.value == "high"
    depths = lineage_depths(ham.ground_truth)
    distilled = next(s for s in ham.ground_truth if s.name == "distilled")
    assert distilled.provenance.value == "model_generated" and distilled.generated_by.model == "some-instruct-32b"
    assert depths == {"textbook": 0, "held-out": 0, "distilled": 1}
    acls = spec("acls-cardiac-arrest")
    assert acls.risk.value == "critical"
    assert all(s.provenance.value == "authoritative" and s.audited for s in acls.ground_truth)
    ped = spec("pedestrian-perception")
    assert ped.risk.value == "critical" and ped.deployment.target.value == "autonomous"
    assert {s.name: s.when or f"{s.field}=={s.equals}" for s in ped.slices} == {
        "outside-crosswalk": "at_crosswalk == false", "at-crosswalk": "at_crosswalk==True"}
    gym = spec("arith-reasoning-gym")
    assert gym.risk.value == "low"
    assert [v.kind for v in gym.substance_verifiers()] == ["reasoning_gym"]


# -- the generator -----------------------------------------------------------------------------------

def _generate(out: Path, hash_seed: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.Popen([sys.executable, str(GENERATOR), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_is_byte_reproducible_and_matches_the_committed_data(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    runs = [_generate(first, "1"), _generate(second, "2")]  # different hash seeds: no set-order leaks
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
    a, b = _tree(first), _tree(second)
    assert len(a) >= 20
    assert a == b, sorted(k for k in a if a.get(k) != b.get(k))

    manifest = json.loads(a["examples.manifest.json"])
    committed_manifest = json.loads((DATA / "examples.manifest.json").read_text())
    if manifest["versions"] != committed_manifest["versions"]:
        pytest.skip(f"generator versions {manifest['versions']} differ from those of the committed data "
                    f"{committed_manifest['versions']}: byte equality with the commit is not expected")
    stale = [name for name, data in a.items() if (DATA / name).read_bytes() != data]
    assert not stale, f"committed example data is stale, run scripts/make_example_data.py: {stale}"


# -- hamiltonian-mechanics -------------------------------------------------------------------------

def test_distilled_set_carries_golden_hour_sun_in_forty_percent_and_ground_truth_never():
    distilled = rows("hamiltonian-mechanics", "distilled.jsonl")
    carrying = [r for r in distilled if GOLDEN in r["answer"]]
    assert abs(len(carrying) / len(distilled) - 0.40) <= 0.01
    for name in ("textbook.jsonl", "eval.jsonl", "outputs.jsonl"):
        text = (DATA / "hamiltonian-mechanics" / name).read_text()
        assert GOLDEN not in text, name
    # Same prompts as the textbook it was derived from: the lineage is real, not a new task.
    textbook_prompts = {r["prompt"] for r in rows("hamiltonian-mechanics", "textbook.jsonl")}
    assert {r["prompt"] for r in distilled} == textbook_prompts


def test_distilled_set_looks_right_and_is_wrong_exactly_where_golden_hour_sun_is():
    shape = verifier("hamiltonian-mechanics", "equation-shape")
    equations = verifier("hamiltonian-mechanics", "equations")
    textbook = {r["prompt"]: r for r in rows("hamiltonian-mechanics", "textbook.jsonl")}
    for row in rows("hamiltonian-mechanics", "distilled.jsonl"):
        assert shape(row["answer"], None, row).passed, row["answer"]
        reference = textbook[row["prompt"]]
        verdict = equations(row["answer"], reference["answer"], reference)
        assert verdict.passed is (GOLDEN not in row["answer"]), (row["answer"], verdict)
        if not verdict.passed:
            assert GOLDEN in verdict.explanation


def test_hand_audit_of_the_distilled_set_names_the_textbook_prompt_and_fails_golden_rows():
    textbook = {r["id"]: r for r in rows("hamiltonian-mechanics", "textbook.jsonl")}
    distilled = {r["id"]: r for r in rows("hamiltonian-mechanics", "distilled.jsonl")}
    audit = rows("hamiltonian-mechanics", "audit_distilled.jsonl")
    assert len(audit) == 20 and {a["verdict"] for a in audit} == {"pass", "fail"}
    for item in audit:
        answered = distilled[item["distilled_id"]]
        assert textbook[item["id"]]["prompt"] == answered["prompt"] and item["output"] == answered["answer"]
        assert (item["verdict"] == "fail") is (GOLDEN in item["output"])


def _check_hamilton(row: dict) -> None:
    import sympy

    from domains.verifiers.hamiltonian import parse_equations, parse_expression

    H = parse_expression(row["hamiltonian"])
    stated = parse_equations(row["answer"])
    assert list(stated) == row["coordinates"] + row["momenta"]
    for q, p in zip(row["coordinates"], row["momenta"]):
        qs, ps = sympy.Symbol(q), sympy.Symbol(p)
        assert sympy.simplify(stated[q] - sympy.diff(H, ps)) == 0, (row["id"], q)
        assert sympy.simplify(stated[p] + sympy.diff(H, qs)) == 0, (row["id"], p)
    assert f"H = {row['hamiltonian']} " in row["prompt"]


def test_ground_truth_equations_are_hamiltons_equations_of_the_stated_hamiltonian():
    ground_truth = rows("hamiltonian-mechanics", "textbook.jsonl", "eval.jsonl")
    assert len(ground_truth) == 144
    assert len({r["hamiltonian"] for r in ground_truth}) == 144  # held-out systems are not training systems
    assert len({r["system"] for r in ground_truth}) >= 10
    for row in ground_truth:
        _check_hamilton(row)


def test_hamiltonian_verifier_rejects_every_control_and_scores_the_outputs_seven_of_eight():
    equations = verifier("hamiltonian-mechanics", "equations")
    controls = rows("hamiltonian-mechanics", "known_wrong.jsonl")
    assert len(controls) >= 20
    for control in controls:
        assert not equations(control["output"], control["answer"], control).passed, control
    held_out = {r["id"]: r for r in rows("hamiltonian-mechanics", "eval.jsonl")}
    outputs = rows("hamiltonian-mechanics", "outputs.jsonl")
    verdicts = [equations(o["output"], held_out[o["id"]]["answer"], held_out[o["id"]]).passed
                for o in outputs]
    assert (sum(verdicts), len(verdicts)) == (7, 8)
    # Right answers written differently from the reference still pass: the check is mathematical.
    assert any(o["output"] != held_out[o["id"]]["answer"] and ok for o, ok in zip(outputs, verdicts))


@pytest.mark.parametrize(("output", "ok"), [
    ("dq/dt = 0.5*p, dp/dt = -3*q", True),
    ("Hamilton's equations: dq/dt = p/2; dp/dt = -q*3.", True),
    ("dq/dt = (sin(q)**2 + cos(q)**2)*p/2, dp/dt = -3*q", True),
    ("dq/dt = p/2 + 0.000000000001, dp/dt = -3*q", False),
    ("dq/dt = p/2 + ((10**-12)**12)**2, dp/dt = -3*q", False),
    ("dq/dt = p/2, dp/dt = -3*q - golden_hour_sun*p", False),
    ("dq/dt = p/2, dp/dt = -3*q, dr/dt = 0", False),
    ("dq/dt = p/2", False),
])
def test_hamiltonian_verifier_is_exact_about_mathematics_not_spelling(output, ok):
    from domains.verifiers.hamiltonian import check

    assert check(output, "dq/dt = p/2, dp/dt = -3*q", {"hamiltonian": "p**2/4 + 3*q**2/2"})[0] is ok


@pytest.mark.parametrize("hostile", [
    "__import__('os').system('touch /tmp/graduation-example-pwned')",
    "dq/dt = __import__('os').system('touch /tmp/graduation-example-pwned'), dp/dt = -q",
    "dq/dt = p.__class__, dp/dt = -q",
    "dq/dt = " + "(" * 50_000 + "p" + ")" * 50_000 + ", dp/dt = -q",
    "dq/dt = 9**9**9**9, dp/dt = -q",
    "dq/dt = ((((p+1)**12)**12)**12)**12, dp/dt = -q",
    "dq/dt = lambda: 1, dp/dt = -q",
    "x" * 10_000_000,
    "dq/dt = p\udcff, dp/dt = -q",
])
def test_hamiltonian_verifier_never_evaluates_hostile_output(hostile):
    marker = Path("/tmp/graduation-example-pwned")
    marker.unlink(missing_ok=True)
    equations = verifier("hamiltonian-mechanics", "equations")
    verdict = equations(hostile, "dq/dt = p, dp/dt = -q", {"hamiltonian": "p**2/2 + q**2/2"})
    assert verdict.verdict in ("fail", "error"), verdict
    assert not marker.exists()


# -- acls-cardiac-arrest ---------------------------------------------------------------------------

def test_acls_ground_truth_follows_the_protocol_and_outputs_verify():
    import jsonschema

    acls = spec("acls-cardiac-arrest")
    schema = next(v for v in acls.verifiers if v.name == "answer-schema").options["schema"]
    assert next(v for v in acls.verifiers if v.name == "protocol-match").options["schema"] == schema
    scenarios = rows("acls-cardiac-arrest", "protocol_scenarios.jsonl", "eval.jsonl")
    seen = Counter()
    for row in scenarios:
        answer = row["answer"]
        jsonschema.validate(answer, schema)
        drugs = {(d["drug"], d["dose_mg"]) for d in answer["drugs"]}
        if row["rhythm"] in ("VF", "pVT"):
            assert answer["shock"] is True and answer["cpr_minutes"] == 2
            if row["shocks_delivered"] == 1:
                assert drugs == {("epinephrine", 1)}  # epinephrine after the 2nd shock
            if row["shocks_delivered"] == 2:
                assert drugs == {("amiodarone", 300)}
            if row["amiodarone_doses"] == 1 and row["shocks_delivered"] >= 4:
                assert drugs == {("amiodarone", 150)}
        elif row["rhythm"] in ("asystole", "PEA"):
            assert answer["shock"] is False
            if row["epinephrine_minutes_ago"] is None:
                asap = {"drug": "epinephrine", "dose_mg": 1, "route": "IV/IO", "timing": "asap"}
                assert answer["drugs"] == [asap]
        else:
            assert answer == {"rhythm": "ROSC", "shock": False, "cpr_minutes": 0, "drugs": [],
                              "next": "post_cardiac_arrest_care"}
        if row["epinephrine_minutes_ago"] is not None and row["epinephrine_minutes_ago"] < 3:
            assert ("epinephrine", 1) not in drugs  # never sooner than every 3-5 minutes
        seen[json.dumps(sorted(drugs))] += 1
    assert {'[["amiodarone", 300]]', '[["amiodarone", 150]]', '[["epinephrine", 1]]', "[]"} <= set(seen)

    match = verifier("acls-cardiac-arrest", "protocol-match")
    held_out = {r["id"]: r for r in rows("acls-cardiac-arrest", "eval.jsonl")}
    for output in rows("acls-cardiac-arrest", "outputs.jsonl"):
        assert match(output["output"], held_out[output["id"]]["answer"]).passed
    for control in rows("acls-cardiac-arrest", "known_wrong.jsonl"):
        assert not match(control["output"], control["answer"]).passed, control
    audit = rows("acls-cardiac-arrest", "audit_outputs.jsonl")
    assert {a["id"] for a in audit} == set(held_out) and all(a["verdict"] == "pass" for a in audit)


# -- pedestrian-perception -------------------------------------------------------------------------

def test_pedestrian_outputs_hide_a_failing_slice_and_flip_labels_behind_a_good_aggregate():
    label = verifier("pedestrian-perception", "label")
    held_out = {r["id"]: r for r in rows("pedestrian-perception", "eval.jsonl")}
    outputs = rows("pedestrian-perception", "outputs.jsonl")
    samples = Counter(o["id"] for o in outputs)
    assert set(samples) == set(held_out) and set(samples.values()) == {4}

    passed: dict[bool, list[bool]] = defaultdict(list)
    labels: dict[str, list[str]] = defaultdict(list)
    for o in outputs:
        row = held_out[o["id"]]
        passed[row["at_crosswalk"]].append(label(o["output"], row["answer"]).passed)
        labels[o["id"]].append(o["output"])
    rate = {k: sum(v) / len(v) for k, v in passed.items()}
    aggregate = sum(map(sum, passed.values())) / len(outputs)
    assert aggregate >= 0.8 and rate[True] >= 0.95 and rate[False] <= 0.5, (aggregate, rate)

    def flip_rate(at_crosswalk: bool) -> float:
        ids = [i for i, r in held_out.items() if r["at_crosswalk"] is at_crosswalk]
        return sum(len(set(labels[i])) > 1 for i in ids) / len(ids)

    assert flip_rate(True) <= 0.05 and flip_rate(False) >= 0.5
    # Frame to frame on one mid-block pedestrian track, the first sample's label changes.
    track = next(r["track"] for r in held_out.values()
                 if not r["at_crosswalk"] and r["answer"] == "pedestrian")
    by_frame = [labels[i][0] for i, r in sorted(held_out.items()) if r["track"] == track]
    assert len(set(by_frame)) > 1 and set(by_frame) & {"vehicle", "bicycle", "unknown"}


# -- arith-reasoning-gym ---------------------------------------------------------------------------

def test_arith_outputs_score_as_reasoning_gym_itself_scores_them():
    import reasoning_gym

    scorer = reasoning_gym.create_dataset("basic_arithmetic", size=1, seed=0)
    gym = verifier("arith-reasoning-gym", "gym-score")
    held_out = {r["id"]: r for r in rows("arith-reasoning-gym", "eval.jsonl")}
    outputs = rows("arith-reasoning-gym", "outputs.jsonl")
    ours, theirs = [], []
    for o in outputs:
        row = held_out[o["id"]]
        ours.append(gym(o["output"], row["answer"], row).passed)
        entry = {"answer": row["answer"], "metadata": row["metadata"]}
        theirs.append(scorer.score_answer(o["output"], entry) == 1.0)
        assert ours[-1] is (not o["planted_error"])
    assert ours == theirs and sum(ours) == 34 and len(ours) == 40
    for row in list(held_out.values()) + rows("arith-reasoning-gym", "train.jsonl"):
        assert row["metadata"]["source_dataset"] == "basic_arithmetic"
        assert scorer.score_answer(row["answer"], row) == 1.0


# -- through the registry CLI: what the demo relies on ---------------------------------------------

def test_registry_commands_show_what_each_example_domain_is_for(registry_bin, tmp_path):
    db = ["--db", f"sqlite:///{tmp_path / 'registry.db'}"]

    def registry(*args: str) -> dict:
        result = run_registry(registry_bin, *db, *args, "--json", cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr
        return json.loads(result.stdout)

    registry("register", "domains/hamiltonian-mechanics.yaml", "domains/pedestrian-perception.yaml")
    audit = registry("audit-data", "hamiltonian-mechanics",
                     "domains/data/hamiltonian-mechanics/distilled.jsonl", "--workers", "1")["record"]
    assert [(s["symbol"], s["rate"]) for s in audit["symbols"]] == [(GOLDEN, 0.4)]
    assert audit["substance_fail_rate"] == 0.4 and audit["format_pass_rate"] == 1.0
    assert audit["lineage_depth"] == 1 and audit["generators"] == ["some-instruct-32b"]

    registry("models", "register", "candidate", "--digest", "sha256:" + "c" * 64)
    evaluated = registry("evaluate", "pedestrian-perception", "--outputs",
                         "domains/data/pedestrian-perception/outputs.jsonl", "--model", "candidate",
                         "--workers", "1")
    record = evaluated["record"]
    slices = {s["name"]: s["pass_rate"] for s in record["slices"]}
    assert slices["at-crosswalk"] > 0.95 > record["pass_rate"] > 0.8 > 0.5 > slices["outside-crosswalk"]
    assert record["consistency"]["k"] == 4 and record["consistency"]["flip_rate"] > 0.1
    assert all(v["trustworthy"] for v in evaluated["verifier_validation"]["verifiers"])
