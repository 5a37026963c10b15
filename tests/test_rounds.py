"""Rounds kept as columns (``graduation.policy.rounds``) and as the registry stores them (``graduation.tally``).

A round meets the bar exactly when the phase has nothing to say against it, whichever way it is judged
(all rounds at once, one round alone); the stored columns give back every value; absent values never meet.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from graduation.policy.model import Thresholds
from graduation.policy.phase import round_unmet
from graduation.policy.rounds import Rounds
from graduation.tally import append_round, decode_rounds, dumps, loads, new_body, new_model

SLICES = ("day", "night")

unit = st.floats(0, 1, allow_nan=False)
a_round = st.fixed_dictionaries({
    "n": st.integers(1, 5000), "pass_rate": unit, "wilson_lower": unit,
    "shape_gap": st.floats(-1, 1, allow_nan=False),
    "slices": st.none() | st.dictionaries(st.sampled_from(SLICES), st.tuples(st.integers(1, 50), st.integers(0, 1),
                                                                          unit), max_size=2),
    "consistency": st.none() | st.tuples(unit, unit, st.integers(1, 8)),  # pass^k, flip rate, k: all or none
    "number": st.integers(1, 99), "generated": st.booleans(), "prompts": st.integers(0, 3000), "coverage": unit,
    "uncounted": st.sampled_from([(), ("judge",)]),
}).map(lambda r: {**r, "passed": round(r["pass_rate"] * r["n"]),
                  **dict(zip(("pass_k", "flip_rate", "k"), r["consistency"] or (None, None, None)))})
thresholds = st.builds(Thresholds, min_wilson_lower=unit, min_samples=st.integers(1, 2000), stable_rounds=st.just(2),
                       max_shape_gap=unit, min_pass_k=st.sampled_from([0.0, 0.5, 0.9]), min_coverage=unit)


def build(rows: list[dict]) -> Rounds:
    rounds = Rounds("m@1")
    for seq, r in enumerate(rows):
        rounds.append(r["n"], r["passed"], r["wilson_lower"], r["shape_gap"], r["slices"], r["pass_k"], r["flip_rate"],
                      r["k"], r["number"], r["generated"], r["prompts"], r["coverage"], r["uncounted"], seq)
    return rounds


def stored(rows: list[dict]) -> Rounds:
    """The same rounds written into a body, stored and read back."""
    body = new_body()
    body["models"]["m@1"] = packed = new_model()
    for seq, r in enumerate(rows):
        slices = {name: list(v) for name, v in r["slices"].items()} if r["slices"] else None
        append_round(packed, [r["n"], r["passed"], r["wilson_lower"], r["shape_gap"], slices, r["pass_k"],
                              r["flip_rate"], r["k"], r["number"], "m@1", r["generated"], r["prompts"], r["coverage"],
                              list(r["uncounted"])], seq)
    return decode_rounds("m@1", loads(*dumps(body))["models"]["m@1"])


@settings(max_examples=300, deadline=None)
@given(st.lists(a_round, min_size=1, max_size=6), thresholds, st.sampled_from([(), ("day",), SLICES]))
def test_a_round_meets_the_bar_exactly_when_nothing_is_unmet(rows, t, slices):
    for rounds in (build(rows), stored(rows)):
        meets = rounds.meets(t, slices)
        assert len(meets) == len(rows)
        for i in range(len(rows)):
            assert meets[i] == rounds.meets_at(i, t, slices) == (not round_unmet(rounds.at(i), t, list(slices))[0])


@settings(max_examples=200, deadline=None)
@given(st.lists(a_round, min_size=1, max_size=6))
def test_stored_columns_give_back_every_round(rows):
    built, back = build(rows), stored(rows)
    assert [built.at(i) for i in range(len(rows))] == [back.at(i) for i in range(len(rows))]
    assert list(built.seq) == list(back.seq) == list(range(len(rows)))
    for i, r in enumerate(rows):
        got = back.at(i)
        assert (got.pass_k, got.flip_rate, got.k) == (r["pass_k"], r["flip_rate"], r["k"])
        assert got.slices == {name: tuple(v) for name, v in (r["slices"] or {}).items()}


def test_an_absent_or_nan_value_never_meets_the_bar():
    t = Thresholds(min_wilson_lower=0.5, min_samples=1, stable_rounds=2, max_shape_gap=1.0, min_pass_k=0.5)
    ok = dict(n=10, passed=10, wilson_lower=0.9, shape_gap=0.0, slices={"day": (5, 5, 0.9)}, pass_k=0.9,
              flip_rate=0.0, k=4, number=1, generated=False, prompts=10, coverage=1.0, uncounted=())
    assert build([ok]).meets(t, ["day"]) == [True]
    for change in ({"pass_k": None}, {"slices": None}, {"slices": {"night": (5, 5, 0.9)}}, {"wilson_lower": math.nan},
                   {"shape_gap": math.nan}, {"coverage": math.nan}, {"uncounted": ("judge",)}):
        rounds = build([{**ok, **change}])
        assert rounds.meets(t, ["day"]) == [False], change
        assert rounds.meets_at(0, t, ["day"]) is False, change
        assert round_unmet(rounds.at(0), t, ["day"])[0], change


lenient = st.builds(Thresholds, min_wilson_lower=st.just(0.0), min_samples=st.just(1), stable_rounds=st.just(2),
                    max_shape_gap=st.just(1.0), min_pass_k=st.just(0.0), min_coverage=st.just(0.0))


@settings(max_examples=300, deadline=None)
@given(st.lists(a_round, min_size=1, max_size=5), thresholds | lenient, st.sampled_from([(), ("day",)]), st.booleans(),
       st.integers(2, 4), st.tuples(st.integers(0, 300), st.integers(0, 300)))
def test_the_short_way_to_a_models_phase_gives_the_full_answer(rows, t, slices, validated, stable, human):
    """``decide_phase`` settles most models without their full core (no validated verifier: discovery; fewer
    rounds than the window: the newest round alone); the answer must be the core's."""
    from graduation.policy.phase import _model_core, _model_phase

    t = t.model_copy(update={"stable_rounds": stable, "min_human_audit": 100})
    facts = {"domain": {"slices": list(slices), "external_sources": ()},
             "verifiers": {"substance_validated": validated, "references_verified": False}}
    human = (max(human), max(human) if human[0] % 2 else min(human))  # checked, held (all held, half the time)
    for rounds in (build(rows), stored(rows)):
        short = _model_phase(facts, rounds, t, human)
        assert (short if isinstance(short, str) else short.phase) == _model_core(facts, rounds, t, human).phase


def test_a_model_with_just_enough_rounds_is_graduated_the_short_way_too():
    from graduation.policy.phase import _model_core, _model_phase

    t = Thresholds(min_wilson_lower=0.5, min_samples=1, stable_rounds=2, max_shape_gap=1.0, min_human_audit=10)
    good = dict(n=100, passed=99, wilson_lower=0.9, shape_gap=0.0, slices=None, pass_k=None, flip_rate=None, k=None,
                number=1, generated=False, prompts=100, coverage=1.0, uncounted=())
    facts = {"domain": {"slices": [], "external_sources": ()},
             "verifiers": {"substance_validated": True, "references_verified": False}}
    for rows, phase in (([good], "candidate"), ([good, good], "graduated"), ([good, good, good], "graduated")):
        rounds = build(rows)
        short = _model_phase(facts, rounds, t, (20, 20))
        full = _model_core(facts, rounds, t, (20, 20)).phase
        assert (short if isinstance(short, str) else short.phase) == phase == full
