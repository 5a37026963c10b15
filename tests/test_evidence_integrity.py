"""Evidence that cannot be gamed (issue 12): each case measured on the old main becomes a test that now fails to
graduate or pass the gate, with a reason naming the cause."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from graduation.errors import EvidenceRefused, InputError
from graduation.service.data_audit import audit_data
from graduation.service.validation import check_verifiers
from graduation.service.evaluation import evaluate
from graduation.service.project import load_project_domain
from graduation.store import Database
from graduation.store.domains import register
from graduation.store.evidence import list_evidence
from graduation.verifiers import VerifierPool
from tests.modelreg import registered

REPO = Path(__file__).resolve().parent.parent

COUNTS = """\
domain: counts
title: Counting
risk: {risk}
owners: [team@example.org]
task: {{prompt_field: prompt, answer_field: answer, id_field: id}}
ground_truth:
  - {{name: book, path: data/counts/train.jsonl, provenance: expert, split: train}}
  - {{name: held-out, path: data/counts/eval.jsonl, provenance: {eval_provenance}, split: eval}}
verifiers:
  - {{name: value, kind: exact, role: substance}}
{extra}"""


def write(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def eval_rows(n: int, start: int = 1000) -> list[dict]:
    return [{"id": f"e{i}", "prompt": f"How many stones are in heap number {i}?", "answer": str(i % 17)}
            for i in range(start, start + n)]


def train_rows(n: int) -> list[dict]:
    return [{"id": f"t{i}", "prompt": f"How many shells are in bucket number {i}?", "answer": str(i % 13)}
            for i in range(n)]


def make(project: Path, db_url: str, *, risk: str = "low", evals: list[dict] | None = None,
         trains: list[dict] | None = None, extra: str = "", eval_provenance: str = "expert") -> Database:
    write(project / "domains/data/counts/eval.jsonl", evals if evals is not None else eval_rows(60))
    write(project / "domains/data/counts/train.jsonl", trains if trains is not None else train_rows(60))
    path = project / "domains" / "counts.yaml"
    path.write_text(COUNTS.format(risk=risk, extra=textwrap.dedent(extra), eval_provenance=eval_provenance))
    db = Database(db_url)
    with db.write() as session:
        register(session, load_project_domain(path, project))
    for name in ("m", "m2"):  # rounds belong to registered model versions (issue 11)
        registered(db, name)
    return db


@pytest.fixture(scope="module")
def pool():
    with VerifierPool(workers=2, timeout=5) as p:
        yield p


def decision(db: Database, name: str = "counts"):
    from graduation.policy.model import load_policy
    from graduation.service.decisions import decisions

    return decisions(db, load_policy(None, None), [name])[0].decision


def unmet(d, action: str) -> str:
    return "\n".join(d.actions[action].unmet + d.actions[action].reasons)


# -- invented prompts -----------------------------------------------------------------------------------------

def test_invented_prompts_are_refused_with_file_and_line_and_nothing_is_written(project, db_url, pool, tmp_path):
    db = make(project, db_url)
    outputs = write(tmp_path / "fake.jsonl", [{"prompt": f"fake {i}", "answer": "1", "output": "1"}
                                              for i in range(1000)])
    with pytest.raises(InputError) as exc:
        evaluate(db, project, "counts", outputs, model="m", pool=pool)
    assert "fake.jsonl:1:" in str(exc.value) and "not a registered eval prompt" in str(exc.value)
    with db.read() as session:
        assert list_evidence(session, "counts", kinds=["eval"]) == []


def test_a_training_prompt_is_not_a_reference_either(project, db_url, pool, tmp_path):
    db = make(project, db_url)
    outputs = write(tmp_path / "train_out.jsonl", [{"id": r["id"], "output": r["answer"]} for r in train_rows(5)])
    with pytest.raises(InputError, match="train_out.jsonl:1: .*not a registered eval prompt"):
        evaluate(db, project, "counts", outputs, model="m", pool=pool)


def test_cli_invented_prompts_exit_2(project, db_url, cli, tmp_path):
    make(project, db_url)
    outputs = write(tmp_path / "fake.jsonl", [{"prompt": "fake 1", "answer": "1", "output": "1"}])
    result = cli("evaluate", "counts", "--outputs", str(outputs), "--model", "m")
    assert result.exit_code == 2 and "fake.jsonl:1" in result.output


# -- prompts, not samples ---------------------------------------------------------------------------------------

def test_one_prompt_answered_a_thousand_times_is_one_unit(project, db_url, pool, tmp_path):
    db = make(project, db_url)
    one = eval_rows(60)[0]
    for r in (1, 2):
        outputs = write(tmp_path / f"one{r}.jsonl", [{"id": one["id"], "output": one["answer"], "sample": k + r * 1000}
                                                     for k in range(1000)])
        record = evaluate(db, project, "counts", outputs, model="m", pool=pool).record
    assert (record.n, record.passed, record.prompts) == (1000, 1000, 1)
    assert record.wilson_lower < 0.21 and record.coverage == pytest.approx(1 / 60)
    d = decision(db)
    assert d.phase == "discovery"
    text = unmet(d, "deploy:autonomous")
    assert "distinct prompts 1 < 30" in text and "coverage 2% of the registered eval prompts" in text


def test_sixty_prompts_times_four_do_not_meet_a_hundred(project, db_url, pool, tmp_path):
    db = make(project, db_url, risk="medium", evals=eval_rows(120))
    rows = [{"id": r["id"], "output": r["answer"]} for r in eval_rows(60) for _k in range(4)]
    for r in (1, 2):
        outputs = write(tmp_path / f"four{r}.jsonl", [{**row, "sample": r} for row in rows])
        record = evaluate(db, project, "counts", outputs, model="m", pool=pool).record
    assert (record.n, record.prompts, record.coverage) == (240, 60, 0.5)
    assert "distinct prompts 60 < 100" in unmet(decision(db), "deploy:shadow")


def test_prompt_bound_matches_statsmodels_wilson_over_prompts():
    """Reference computation: Wilson's interval (statsmodels) with n = distinct prompts and the summed per-prompt
    pass fractions as the count; with one sample per prompt, the ordinary Wilson bound on samples."""
    from statsmodels.stats.proportion import proportion_confint

    from graduation.evidence import Tally, VerifierInfo, prompt_bound, wilson_lower

    rates = [1.0] * 40 + [0.75] * 10 + [0.5] * 5 + [0.0] * 5
    mean, bound = prompt_bound(rates)
    low, _high = proportion_confint(sum(rates), len(rates), alpha=0.05, method="wilson")
    assert mean == pytest.approx(sum(rates) / 60) and bound == pytest.approx(low, abs=1e-12)
    assert prompt_bound([1.0, 0.0, 1.0, 1.0])[1] == pytest.approx(wilson_lower(3, 4), abs=1e-12)
    tally = Tally([VerifierInfo("v", "substance", "exact")], per_prompt=True)
    for prompt, verdicts in (("a", "pppp"), ("b", "ppff"), ("c", "p"), ("d", "ffff")):
        for v in verdicts:
            tally.add(None, [("pass" if v == "p" else "fail", None, None)], prompt_key=prompt)
    record = tally.eval_record(model="m")
    assert record.n == 13 and record.prompts == 4 and record.prompt_pass_rate == pytest.approx(2.5 / 4)
    assert record.wilson_lower == pytest.approx(proportion_confint(2.5, 4, method="wilson")[0], abs=1e-12)
    assert record.wilson_lower < wilson_lower(record.passed, record.n)  # never the per-sample bound


# -- one file, one round ------------------------------------------------------------------------------------------

def test_the_same_outputs_file_is_one_round(project, db_url, pool, tmp_path):
    db = make(project, db_url)
    outputs = write(tmp_path / "out.jsonl", [{"id": r["id"], "output": r["answer"]} for r in eval_rows(60)])
    evaluate(db, project, "counts", outputs, model="m", pool=pool)
    for r in (2, 3):
        with pytest.raises(EvidenceRefused, match=r"already recorded for model 'm@1' as round 1"):
            evaluate(db, project, "counts", outputs, model="m", pool=pool)
    with db.read() as session:
        assert [e.round for e in list_evidence(session, "counts", kinds=["eval"])] == [1]
    d = decision(db)
    assert d.phase == "candidate" and "stable rounds 1 < 2" in unmet(d, "deploy:autonomous")
    # another model's outputs with the same bytes are that model's round
    evaluate(db, project, "counts", outputs, model="m2", pool=pool)


def test_cli_same_file_again_exits_1_naming_the_round(project, db_url, cli, tmp_path):
    make(project, db_url)
    outputs = write(tmp_path / "out.jsonl", [{"id": r["id"], "output": r["answer"]} for r in eval_rows(60)])
    assert cli("evaluate", "counts", "-o", str(outputs), "-m", "m").exit_code == 0
    again = cli("evaluate", "counts", "-o", str(outputs), "-m", "m")
    assert again.exit_code == 1 and "round 1" in again.output


# -- held-out that is not held out --------------------------------------------------------------------------------

def test_eval_prompts_also_in_training_never_count(project, db_url, pool, cli, tmp_path):
    evals = eval_rows(54)
    trains = train_rows(30) + [{**r, "id": f"copy-{r['id']}", "prompt": "  " + r["prompt"].upper() + " "}
                               for r in evals[:35]]
    db = make(project, db_url, evals=evals, trains=trains)
    validated = cli("validate", str(project / "domains"), "--json")
    heldout = json.loads(validated.output)["domains"][0]["heldout"]
    assert (heldout["eval_prompts"], heldout["overlapping"]) == (54, 35)
    rows = [{"id": r["id"], "output": r["answer"], "sample": k} for k in range(6) for r in evals][:300]
    for r in (1, 2):
        outputs = write(tmp_path / f"o{r}.jsonl", [{**row, "round": r} for row in rows])
        record = evaluate(db, project, "counts", outputs, model="m", pool=pool).record
    assert record.overlap_prompts == 35 and record.prompts == 19 and record.overlap_rows > 0
    assert record.n == 300 - record.overlap_rows
    d = decision(db)
    assert d.phase == "discovery" and d.facts["eval"]["overlap_rate"] == pytest.approx(35 / 54)
    text = unmet(d, "deploy:autonomous")
    assert "distinct prompts 19 < 30" in text and "coverage 35%" in text


def test_ngram_overlap_is_measured_the_lm_eval_way():
    from graduation.heldout import overlap

    train = ["Alice walked her three dogs along the river bank before the storm broke over the hills that evening"]
    found = overlap({"a": "alice   WALKED her three dogs along the river bank before the storm broke over the hills "
                          "that evening",
                     "b": "Yesterday alice walked her three dogs along the river bank before the storm broke over us",
                     "c": "Bob fed the cat", "d": "ALICE walked"}, train)
    assert found.exact == {"a"} and found.ngram == {"a", "b"}
    assert found.rate == 0.25 and found.ngram_rate == 0.5


# -- a verifier that cannot fail ----------------------------------------------------------------------------------

VACUOUS = """\
verifiers:
  - name: anything
    kind: regex
    role: substance
    mutations: false
    options: {pattern: '(?s).+'}
"""


def test_a_verifier_that_cannot_fail_is_unvalidated_and_its_rounds_never_count(project, db_url, pool, cli,
                                                                               tmp_path):
    write(project / "domains/data/counts/eval.jsonl", eval_rows(300))
    write(project / "domains/data/counts/train.jsonl", train_rows(10))
    text = COUNTS.format(risk="low", extra="", eval_provenance="expert").split("verifiers:")[0] + VACUOUS
    (project / "domains" / "counts.yaml").write_text(text)
    db = Database(db_url)
    with db.write() as session:
        register(session, load_project_domain(project / "domains" / "counts.yaml", project))
    registered(db, "m")
    check = check_verifiers(db, project, "counts", pool=pool).record.verifiers[0]
    assert not check.trustworthy and check.status == "unvalidated" and check.meaningful_rejected == 0
    assert any("add a controls: file" in r and "mutations: true" in r for r in check.reasons)
    for r in (1, 2):
        outputs = write(tmp_path / f"wrong{r}.jsonl", [{"id": x["id"], "output": f"wrong {r}"} for x in eval_rows(300)])
        result = cli("evaluate", "counts", "-o", str(outputs), "-m", "m")
        assert result.exit_code == 0 and "NOT COUNTED" in result.output and "anything" in result.output
    with db.read() as session:
        stored = list_evidence(session, "counts", kinds=["eval"])
    assert stored[-1].record.pass_rate == 1.0 and stored[-1].record.uncounted_verifiers == ["anything"]
    d = decision(db)
    assert d.phase == "discovery" and d.allowed_actions == ["deploy:sandbox"]
    assert "anything" in d.facts["verifiers"]["unvalidated"]
    assert "no validated substance verifier" in unmet(d, "deploy:autonomous")
    status = cli("status", "counts", "--model", "m", "--require", "deploy:autonomous")
    assert status.exit_code == 1


def test_empty_output_alone_does_not_validate():
    from graduation.verifiers.base import build
    from graduation.verifiers.validation import validate
    from graduation.spec import VerifierSpec

    spec = VerifierSpec(name="anything", kind="regex", role="substance", mutations=False,
                        options={"pattern": "(?s).+"})
    verifier = build(spec, REPO)
    refs = [("4", {"prompt": "2+2"}), ("9", {"prompt": "3*3"})]

    def run(jobs):
        from graduation.verifiers import verify_items

        return [verify_items(v, [item])[0] for v, item in jobs]

    record = validate([verifier], refs, {}, run, mutations_for={"anything": False})
    check = record.verifiers[0]
    assert check.controls_rejected == 1 and check.controls == 1 and check.status == "unvalidated"
    # an exact verifier shown only two declared wrong answers is unvalidated; three validate it
    from graduation.verifiers.validation import Control

    exact = build(VerifierSpec(name="value", kind="exact", role="substance", mutations=False), REPO)
    wrong = [Control(str(k), "4", {"prompt": "2+2"}, f"controls.jsonl:{k}") for k in (1, 2, 3)]
    two = validate([exact], refs, {"value": wrong[:2]}, run, mutations_for={"value": False}).verifiers[0]
    three = validate([exact], refs, {"value": wrong}, run, mutations_for={"value": False}).verifiers[0]
    assert (two.status, two.meaningful_rejected) == ("unvalidated", 2)
    assert (three.status, three.meaningful_rejected, three.trustworthy) == ("trustworthy", 3, True)
    # with mutations it is shown to fail, and it lets them through: untrustworthy
    mutated = validate([verifier], refs, {}, run, mutations_for={"anything": True}).verifiers[0]
    assert mutated.status == "untrustworthy"


# -- unaudited copies ----------------------------------------------------------------------------------------------

GRADUATED_COPIES = """\
domain: copies
title: Copies of a protocol
risk: low
owners: [team@example.org]
task: {prompt_field: prompt, answer_field: answer, id_field: id}
ground_truth:
  - {name: protocol, path: data/copies/protocol.jsonl, provenance: authoritative, audited: true, split: train}
  - {name: held-out, path: data/copies/eval.jsonl, provenance: authoritative, audited: true, split: eval}
  - name: paraphrased
    path: data/copies/paraphrased.jsonl
    provenance: model_generated
    generated_by: {model: helper-7b}
    split: train
verifiers:
  - {name: value, kind: exact, role: substance}
"""


def test_an_unaudited_model_generated_source_blocks_sft_until_audited(project, db_url, pool, cli):
    write(project / "domains/data/copies/protocol.jsonl", train_rows(50))
    write(project / "domains/data/copies/eval.jsonl", eval_rows(50))
    write(project / "domains/data/copies/paraphrased.jsonl",
          [{**r, "id": f"p{i}", "answer": str(int(r["answer"]) + 1) if i % 10 < 3 else r["answer"]}
           for i, r in enumerate(train_rows(50))])
    (project / "domains" / "copies.yaml").write_text(GRADUATED_COPIES)
    assert cli("register", str(project / "domains" / "copies.yaml")).exit_code == 0
    db = Database(db_url)
    check_verifiers(db, project, "copies", pool=pool)
    # the generator graduated in this domain by its own rounds (issue 11: looked up, never declared)
    registered(db, "helper-7b")
    for r in (1, 2):
        outputs = write(project / f"helper{r}.jsonl", [{"id": x["id"], "output": x["answer"], "sample": r}
                                                       for x in eval_rows(50)])
        evaluate(db, project, "copies", outputs, model="helper-7b", pool=pool)
    d = decision(db, "copies")
    assert d.phase == "graduated" and not d.allowed("train:sft")
    assert list(d.actions["train:sft"].rules) == ["sft-unaudited-source"]
    assert "paraphrased" in unmet(d, "train:sft") and "never audited" in unmet(d, "train:sft")
    assert cli("status", "copies", "--require", "train:sft").exit_code == 1
    audit = audit_data(db, project, "copies", project / "domains/data/copies/paraphrased.jsonl", pool=pool).record
    assert audit.source == "paraphrased" and audit.substance_fail_rate == pytest.approx(0.3)
    d = decision(db, "copies")
    assert list(d.actions["train:sft"].rules) == ["sft-data-fails-verifiers"]


def test_jobs_generate_sft_on_a_fresh_registry_audits_and_names_golden_hour_sun(tmp_path: Path):
    from graduation.jobs.generate import JobRefused
    from graduation.service.jobs import plan_job

    root = tmp_path / "ham"
    shutil.copytree(REPO / "domains", root / "domains", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "policies").mkdir()
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    with db.write() as session:
        register(session, load_project_domain(root / "domains" / "hamiltonian-mechanics.yaml", root))
    with pytest.raises(JobRefused) as exc:
        plan_job(db, root, "hamiltonian-mechanics", mode="sft")
    text = str(exc.value)
    assert "golden_hour_sun in 40.0% of rows (48 rows)" in text and "48 of 120 rows fail substance verifiers" in text
    with db.read() as session:
        audits = [e.record for e in list_evidence(session, "hamiltonian-mechanics", kinds=["data_audit"])]
    assert {a.source for a in audits} == {"distilled", "textbook"}
    # a second refusal reuses the audits (cached by content hash)
    with pytest.raises(JobRefused):
        plan_job(db, root, "hamiltonian-mechanics", mode="sft")
    with db.read() as session:
        assert len(list_evidence(session, "hamiltonian-mechanics", kinds=["data_audit"])) == len(audits)
    db.dispose()


# -- symbols that are format, not invention -----------------------------------------------------------------------

def test_answer_labels_shared_by_every_row_are_not_flagged_an_invented_symbol_is(project, db_url, pool, tmp_path):
    db = make(project, db_url, evals=eval_rows(100))
    rows = []
    for i, r in enumerate(eval_rows(100)):
        extra = " + twilight_refraction" if i % 100 < 21 else ""
        rows.append({"id": r["id"], "output": f"$d_i = {r['answer']}{extra}$"})
    outputs = write(tmp_path / "labels.jsonl", rows)
    record = evaluate(db, project, "counts", outputs, model="m", pool=pool, store=False).record
    assert [(s.symbol, s.rate) for s in record.symbols] == [("twilight_refraction", 0.21)]
    # a label that only half the answers open with is not the format of the answers: flagged
    half = write(tmp_path / "half.jsonl", [{"id": r["id"], "output": f"zeta_k = {r['answer']}" if i % 2 else r["answer"]}
                                           for i, r in enumerate(eval_rows(100))])
    record = evaluate(db, project, "counts", half, model="m", pool=pool, store=False).record
    assert [(s.symbol, s.rate) for s in record.symbols] == [("zeta_k", 0.5)]


def test_identifiers_from_the_prompt_and_allowed_symbols_are_not_flagged(project, db_url, pool, tmp_path):
    evals = [{"id": f"e{i}", "prompt": f"Let k_max = {i}. What is k_max + 1?", "answer": str(i + 1)}
             for i in range(50)]
    # held-out prompts from an untrusted source: their identifiers are not in the trusted vocabulary
    db = make(project, db_url, evals=evals, extra="allowed_symbols: [step_count]\n", eval_provenance="unknown")
    rows = [{"id": r["id"], "output": f"k_max + 1 = {r['answer']} in step_count{' via moon_phase' * (i % 5 == 0)}"}
            for i, r in enumerate(evals)]
    outputs = write(tmp_path / "prompt_ids.jsonl", rows)
    record = evaluate(db, project, "counts", outputs, model="m", pool=pool, store=False).record
    assert [(s.symbol, s.rate) for s in record.symbols] == [("moon_phase", 0.2)]


def test_an_invented_symbol_in_every_row_is_still_flagged(project, db_url, pool, tmp_path):
    db = make(project, db_url, evals=eval_rows(50))
    rows = [{"id": r["id"], "output": f"{r['answer']} * golden_hour_sun"} for r in eval_rows(50)]
    record = evaluate(db, project, "counts", write(tmp_path / "all.jsonl", rows), model="m", pool=pool,
                      store=False).record
    assert [s.symbol for s in record.symbols] == ["golden_hour_sun"] and record.symbols[0].rate == 1.0


def test_a_label_must_also_recur_in_nearly_every_row_beyond_the_sampled_ones():
    from graduation.evidence import SymbolScanner

    scanner = SymbolScanner(set(), label_sample=10)
    for i in range(100):
        scanner.add(f"zeta_k = {i}" if i < 10 else f"{i} plus zeta_k" if i < 30 else str(i), ("f", i + 1))
    assert [(f.symbol, f.rate) for f in scanner.flags()] == [("zeta_k", 0.3)]
    template = SymbolScanner(set(), label_sample=10)
    for i in range(100):
        template.add(f"$d_i = {i}$", ("f", i + 1))
    assert template.flags() == []


def test_parts_merged_in_file_order_count_as_one_scan_prompts_labels_and_a_bounded_summary():
    """The forked scan and the Ray engine merge part tallies (``Tally.merge``): per-prompt groups, the label
    sample of the first rows and the bounded (Misra-Gries) symbol summary must come out as one scan's."""
    from graduation.evidence import SymbolScanner, Tally, VerifierInfo

    def tally(capacity: int) -> Tally:
        return Tally([VerifierInfo("v", "substance", "exact")], (), SymbolScanner(set(), label_sample=15,
                                                                                  capacity=capacity),
                     per_prompt=True)

    items = []
    for i in range(60):
        text = f"d_i = {i}" if i < 12 else f"{i} via moon_phase" if i % 3 == 0 else f"{i} and tok{i}"
        items.append((f"p{i % 20}", "pass" if i % 4 else "fail", text))
    for capacity in (65536, 8):
        whole = tally(capacity)
        for prompt, verdict, text in items:
            whole.add(None, [(verdict, None, None)], prompt_key=prompt, symbol_text=text, where=prompt)
        merged = tally(capacity)
        for start, stop in ((0, 7), (7, 26), (26, 60)):  # the label sample (15 rows) ends inside the second part
            part = merged.fresh()
            for prompt, verdict, text in items[start:stop]:
                part.add(None, [(verdict, None, None)], prompt_key=prompt, symbol_text=text, where=prompt)
            merged.merge(part.state())
        assert merged.symbols.labels == whole.symbols.labels and len(merged.symbols.label_rows) == 15
        a = whole.eval_record(model="m").model_dump(exclude={"symbols"})
        b = merged.eval_record(model="m").model_dump(exclude={"symbols"})
        assert a == b and a["prompts"] == 20
        if capacity == 65536:  # exact counts: the same flags
            assert whole.eval_record(model="m").symbols == merged.eval_record(model="m").symbols
        else:  # overflowed: both summaries flag moon_phase (an upper bound never lets it through)
            assert merged.symbols.slack > 0
            assert "moon_phase" in {f.symbol for f in merged.eval_record(model="m").symbols}
