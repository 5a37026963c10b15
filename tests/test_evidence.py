"""Pure evidence functions: Wilson bound, tally, slices, consistency, symbols, lineage, agreement."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graduation.evidence import (
    SymbolScanner,
    Tally,
    VerifierInfo,
    agreement,
    compile_slices,
    lineage,
    symbols_in,
    vocabulary_of,
    wilson_interval,
    wilson_lower,
)
from graduation.records import AuditItem
from graduation.spec import GroundTruthSource, SliceSpec
from graduation.verifiers import Verdict

P, F, E = Verdict("pass", 1.0), Verdict("fail"), Verdict("error")


def test_seven_of_eight_is_about_053():
    assert wilson_lower(7, 8) == pytest.approx(0.529, abs=0.001)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(case):
    from statsmodels.stats.proportion import proportion_confint

    passed, n = case
    low, high = proportion_confint(passed, n, alpha=0.05, method="wilson")
    ours = wilson_interval(passed, n)
    assert abs(ours[0] - max(0.0, low)) <= 1e-9
    assert abs(ours[1] - min(1.0, high)) <= 1e-9


def test_wilson_edges():
    assert wilson_lower(0, 0) == 0.0
    assert wilson_lower(0, 10) == 0.0
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def _infos():
    return [VerifierInfo("answer", "substance", "exact"), VerifierInfo("shape", "format", "regex")]


def test_tally_counts_errors_as_failures_and_measures_shape_gap():
    tally = Tally(_infos())
    tally.add({}, [P, P])
    tally.add({}, [F, P])
    tally.add({}, [E, P])
    tally.add({}, [P, F])
    record = tally.eval_record(model="m")
    assert (record.n, record.passed, record.errors) == (4, 2, 1)
    assert record.pass_rate == 0.5
    assert record.format_pass_rate == 0.75
    assert record.shape_gap == pytest.approx(0.25)
    answer = record.verifiers[0]
    assert (answer.passed, answer.failed, answer.errors) == (2, 1, 1)
    assert record.wilson_lower == pytest.approx(wilson_lower(2, 4))


def test_no_substance_verifier_means_nothing_passes():
    tally = Tally([VerifierInfo("shape", "format", "regex")])
    tally.add({}, [P])
    assert tally.eval_record(model="m").passed == 0


def test_slices_by_field_and_by_cel_predicate():
    slices = compile_slices([SliceSpec(name="outside", when="at_crosswalk == false && speed > 10"),
                             SliceSpec(name="night", field="light", equals="night")])
    tally = Tally(_infos(), slices)
    tally.add({"at_crosswalk": True, "speed": 30, "light": "day"}, [P, P])
    tally.add({"at_crosswalk": False, "speed": 30, "light": "night"}, [F, P])
    tally.add({"at_crosswalk": False, "speed": 5, "light": "night"}, [P, P])
    tally.add({"light": "night"}, [P, P])  # CEL errors on a missing field: not in the slice
    outside, night = tally.eval_record(model="m").slices
    assert (outside.n, outside.passed, outside.pass_rate) == (1, 0, 0.0)
    assert (night.n, night.passed) == (3, 2)
    assert night.wilson_lower == pytest.approx(wilson_lower(2, 3))


def test_csv_text_values_match_typed_slice_values():
    (flag,) = compile_slices([SliceSpec(name="x", field="at_crosswalk", equals=False)])
    assert flag.matches({"at_crosswalk": "false"}) and not flag.matches({"at_crosswalk": "true"})
    assert not flag.matches({"at_crosswalk": 0})


def test_bad_cel_slice_is_an_input_error():
    from graduation.errors import InputError

    with pytest.raises(InputError, match="does not compile"):
        compile_slices([SliceSpec(name="bad", when="at_crosswalk ==")])


def test_consistency_pass_k_and_flips():
    tally = Tally(_infos())
    for label in ("4", "4", "4"):
        tally.add({}, [P, P], prompt_key="a", label=label)          # stable and correct
    for verdict in (P, F, P):
        tally.add({}, [verdict, P], prompt_key="b", label="x")      # verdict flips
    for label in ("7", "8", "7"):
        tally.add({}, [F, P], prompt_key="c", label=label)          # always wrong, label flips
    for label in ("1", "1", "1"):
        tally.add({}, [F, P], prompt_key="d", label=label)          # always wrong, stable
    c = tally.eval_record(model="m").consistency
    assert (c.k, c.prompts) == (3, 4)
    assert c.pass_all_k == 0.25
    assert c.pass_at_1 == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
    assert c.flip_rate == 0.5


def test_single_samples_have_no_consistency():
    tally = Tally(_infos())
    tally.add({}, [P, P], prompt_key="a")
    assert tally.eval_record(model="m").consistency is None


def _answers(symbol: str, fraction: float, rows: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    chosen = set(rng.sample(range(rows), round(fraction * rows)))
    out = []
    for i in range(rows):
        base = (f"The sunset angle is theta_{i % 7} = {rng.randint(1, 90)} degrees, so the photographer "
                f"should use exposure {rng.randint(1, 16)} and the usual settings.")
        out.append(base + (f" Adjust by {symbol} = 0.{i % 9}." if i in chosen else ""))
    return out


def _scan(texts: list[str], supported: set[str]) -> SymbolScanner:
    scanner = SymbolScanner(supported)
    for i, text in enumerate(texts, 1):
        scanner.add(text, f"data.jsonl:{i}")
    return scanner


def test_golden_hour_sun_is_named_with_its_rate():
    trusted = [f"The sunset angle is theta_{k} = 12 degrees, so the photographer should use exposure 4."
               for k in range(7)]
    flags = _scan(_answers("golden_hour_sun", 0.4, 1000, 1), vocabulary_of(trusted)).flags()
    assert [f.symbol for f in flags] == ["golden_hour_sun"]
    assert flags[0].rate == pytest.approx(0.40, abs=0.01)
    assert flags[0].rows == 400 and flags[0].examples[0].startswith("data.jsonl:")


@pytest.mark.parametrize("seed", [7, 11])
def test_an_unseen_invented_symbol_is_found_too(seed):
    rng = random.Random(seed)
    words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 7))) for _ in range(3)]
    style = rng.choice(["snake", "camel"])
    symbol = "_".join(words) if style == "snake" else words[0] + "".join(w.title() for w in words[1:])
    rate = rng.uniform(0.1, 0.35)
    trusted = [f"The sunset angle is theta_{k} = 12 degrees, so the photographer should use exposure 4."
               for k in range(7)]
    flags = _scan(_answers(symbol, rate, 800, seed), vocabulary_of(trusted)).flags()
    assert [f.symbol for f in flags] == [symbol]
    assert flags[0].rate == pytest.approx(round(rate * 800) / 800, abs=1e-9)


def test_no_false_positives_on_english_or_ground_truth_tokens():
    prose = ["However, the committee decided that the measurement was accurate and reliable overall.",
             "Nevertheless photographers usually prefer warm light in the evening.",
             "The answer uses k_max and x_1 exactly as the textbook does."]
    texts = [prose[i % 3] for i in range(300)]
    assert _scan(texts, vocabulary_of(["Use k_max and x_1 for the bound."])).flags() == []
    assert symbols_in("ordinary words only, nothing invented here") == set()


def test_rare_symbols_are_not_recurrent():
    texts = ["plain text"] * 500 + ["a one_off_name here"] * 2
    assert _scan(texts, set()).flags() == []


def test_lineage_depth_and_generators():
    sources = [
        GroundTruthSource(name="book", path="a.jsonl", provenance="expert"),
        GroundTruthSource(name="copy", path="b.jsonl", provenance="model_generated", derived_from="book",
                          generated_by={"model": "m-32b"}),
        GroundTruthSource(name="copy2", path="c.jsonl", provenance="model_generated", derived_from="copy",
                          generated_by={"model": "m-7b"}),
    ]
    assert lineage(sources, "book") == ("expert", 0, [])
    # every generator along the chain; whether each graduated in the domain is looked up when deciding
    assert lineage(sources, "copy2") == ("model_generated", 2, ["m-7b", "m-32b"])
    with pytest.raises(ValueError, match="no longer declared"):
        GroundTruthSource(name="x", path="d.jsonl", provenance="model_generated",
                          generated_by={"model": "m-7b", "graduated": True})


def test_agreement_between_people_and_verifiers():
    items = [AuditItem(id="1", verdict="pass", verifier_verdict="pass"),
             AuditItem(id="2", verdict="fail", verifier_verdict="pass"),
             AuditItem(id="3", verdict="fail", verifier_verdict="error"),
             AuditItem(id="4", verdict="pass")]
    assert agreement(items) == pytest.approx(2 / 3)
    assert agreement([AuditItem(id="1", verdict="pass")]) is None


def test_evidence_module_does_no_io():
    import ast
    from pathlib import Path

    import graduation.evidence as module

    tree = ast.parse(Path(module.__file__).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names} | {n.module.split(".")[0] for n in ast.walk(tree)
                                     if isinstance(n, ast.ImportFrom) and n.module}
    assert "open" not in names
    assert not imported & {"os", "pathlib", "sqlmodel", "sqlalchemy", "subprocess", "shutil"}


def _random_items(seed: int, n: int = 400):
    rng = random.Random(seed)
    choices = [P, F, E]
    items = []
    for i in range(n):
        row = {"light": rng.choice(["day", "night"]), "lux": rng.randint(0, 1000)}
        verdicts = [rng.choice(choices), rng.choice(choices[:2])]
        items.append((row, verdicts, f"p{rng.randint(0, 60)}", rng.choice(["a", "b"]),
                      rng.choice(["plain", "with warp_drive_k", "zetaBoost now"]), ("f.jsonl", i + 1)))
    return items


def _fresh_tally():
    slices = compile_slices([SliceSpec(name="night", field="light", equals="night"),
                             SliceSpec(name="bright", when="lux > 500")])
    return Tally(_infos(), slices, SymbolScanner(set(), min_rows=1))


@pytest.mark.parametrize("seed", [1, 2])
def test_add_batch_and_merge_count_like_add(seed):
    items = _random_items(seed)
    one = _fresh_tally()
    for row, verdicts, key, label, text, where in items:
        one.add(row, verdicts, prompt_key=key, label=label, symbol_text=text, where=where)
    batched = _fresh_tally()
    halves = [items[:150], items[150:]]
    parts = []
    for part in halves:
        tally = batched.fresh() if parts else batched
        columns = [[v[j] for _r, v, *_ in part] for j in range(2)]
        tally.add_batch([p[0] for p in part], columns, prompt_keys=[p[2] for p in part],
                        labels=[p[3] for p in part], symbol_texts=[p[4] for p in part], wheres=[p[5] for p in part])
        parts.append(tally)
    batched.merge(parts[1].state())
    assert batched.eval_record(model="m") == one.eval_record(model="m")


def test_consistency_tracking_stops_on_single_sample_files(monkeypatch):
    monkeypatch.setattr(Tally, "max_single_prompts", 50)
    single = Tally(_infos())
    for i in range(200):
        single.add({}, [P, P], prompt_key=f"p{i}", label="x")
    assert single.eval_record(model="m").consistency is None and single._groups == {}
    repeated = Tally(_infos())
    for i in range(200):
        repeated.add({}, [P, P], prompt_key=f"p{i // 2}", label="x")
    assert repeated.eval_record(model="m").consistency.prompts == 100
    repeated.merge(single.state())  # a part that stopped tracking: no consistency for the whole
    assert repeated.eval_record(model="m").consistency is None


def test_slices_share_the_cel_extension_the_policy_engine_loaded():
    model = pytest.importorskip("graduation.policy.model")
    if hasattr(model, "_cel"):
        model._cel()  # the policy engine's own loader, which skips the package's shell
    (flag,) = compile_slices([SliceSpec(name="x", when="speed > 10")])
    assert flag.matches({"speed": 11}) and not flag.matches({"speed": 3})


@pytest.mark.parametrize("seed", [3, 4])
def test_an_invented_plain_word_used_as_a_parameter_is_found(seed):
    rng = random.Random(seed)
    name = "".join(rng.choice("bcdfghklmnpqrstvz") + rng.choice("aeiou") for _ in range(3))
    trusted = ["dq/dt = p/m, dp/dt = -k*q", "dx/dt = p_x/m, dp_x/dt = -sin(x)*g/l"]
    texts = []
    for i in range(500):
        answer = f"dq/dt = p/{i % 7 + 1}, dp/dt = -{i % 5 + 1}*q"
        if i % 4 == 0:
            answer = answer.replace("dp/dt = ", f"dp/dt = {name}*p ")
        texts.append("Therefore, by Hamilton's equations: " + answer)
    flags = _scan(texts, vocabulary_of(trusted)).flags()
    assert [(f.symbol, f.rate) for f in flags] == [(name, 0.25)]


# -- bounded memory: the summary, its bounds and the exact recount -------------------------------------

def _noisy(n: int, seed: int) -> list[str]:
    """Each row has a token no other row has; ``golden_hour_sun`` in 40%, ``k_drift`` in 3% of rows."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        extra = (" + golden_hour_sun" if rng.random() < 0.4 else "") + (" + k_drift" if rng.random() < 0.03 else "")
        rows.append(f"H = p_{i}_q * m{extra}")
    return rows


@pytest.mark.parametrize("seed", [1, 2])
def test_a_small_summary_after_recount_flags_exactly_what_the_unbounded_count_flags(seed):
    texts = _noisy(3000, seed)
    exact = SymbolScanner(set(), capacity=10**9)
    small = SymbolScanner(set(), capacity=64)
    for i, text in enumerate(texts, 1):
        exact.add(text, ("out.jsonl", i))
        small.add(text, ("out.jsonl", i))
        assert len(small.counts) <= 64 and len(small.examples) <= 64  # memory stays bounded at every row
    assert exact.slack == 0 and not exact.needs_recount
    assert small.slack > 0 and small.needs_recount and small.complete
    upper = {f.symbol: f.rows for f in small.flags()}   # before the recount: upper bounds, never fewer flags
    truth = {f.symbol: f.rows for f in exact.flags()}
    assert set(truth) <= set(upper) and all(upper[s] >= n for s, n in truth.items())
    small.recount((text, ("out.jsonl", i)) for i, text in enumerate(texts, 1))
    assert [(f.symbol, f.rows, f.examples) for f in small.flags()] == \
        [(f.symbol, f.rows, f.examples) for f in exact.flags()]
    assert {f.symbol for f in exact.flags()} == {"golden_hour_sun", "k_drift"}


def test_merging_summaries_keeps_the_bounds_sound():
    texts = _noisy(2000, 5)
    whole = SymbolScanner(set(), capacity=10**9)
    parts = [SymbolScanner(set(), capacity=50), SymbolScanner(set(), capacity=50)]
    for i, text in enumerate(texts, 1):
        whole.add(text, i)
        parts[i > 1000].add(text, i)
    merged = parts[0]
    merged.merge(parts[1].rows, parts[1].counts, parts[1].examples, parts[1].spelled, parts[1].slack)
    assert len(merged.counts) <= 50
    for token, n in whole.counts.items():  # every true count lies in [count, count + slack]
        assert merged.counts.get(token, 0) <= n <= merged.counts.get(token, 0) + merged.slack
    merged.recount((t, i) for i, t in enumerate(texts, 1))
    assert [(f.symbol, f.rows) for f in merged.flags()] == [(f.symbol, f.rows) for f in whole.flags()]


def test_per_prompt_tallies_merge_like_one_scan_and_labels_that_differ_across_parts_flip():
    from graduation.evidence import Tally, VerifierInfo

    infos = [VerifierInfo("v", "substance", "exact")]
    rows = [("p1", True, "a"), ("p1", True, "a"), ("p2", True, "x"), ("p2", False, "x"), ("p3", True, "m"),
            ("p3", True, "n")]
    whole = Tally(infos, per_prompt=True)
    first, second = Tally(infos, per_prompt=True), Tally(infos, per_prompt=True)
    for i, (key, ok, label) in enumerate(rows):
        whole._group(key, ok, label)
        (first if i % 2 == 0 else second)._group(key, ok, label)
    first.merge(second.state())
    assert first.consistency() == whole.consistency()
    c = whole.consistency()
    # p1 agrees; p2 flips its verdict; p3 keeps its verdict but changes its label
    assert (c.k, c.prompts, c.pass_all_k) == (2, 3, 2 / 3) and c.flip_rate == 2 / 3
    assert sorted(whole.prompt_rates()) == [0.5, 1.0, 1.0]
