"""Phase computation (pure): discovery, candidate, graduated or regressed, and why.

Two routes lead to ``graduated``:

* **external**: an audited ground-truth source with authoritative or expert provenance, and a
  validated substance verifier that accepts every reference (the discovery happened elsewhere, as
  with a clinical protocol);
* **internal**: the newest ``stable_rounds`` evaluation rounds each meet the bar of the risk level
  (distinct prompts, coverage of the registered eval prompts, Wilson lower bound over prompts, shape gap,
  every declared slice on its own, pass^k if required), verified by a validated substance verifier, with
  the human audit the risk level asks for. ``stable_rounds`` is at least 2 at every risk level, so the
  first qualifying round makes ``candidate`` and only a second consecutive one can graduate. A round
  scored while a substance verifier was untrustworthy or unvalidated never meets the bar.

``candidate``: the newest round meets the bar but stability or the human audit is missing.
``regressed``: an earlier window of rounds met the bar, and now the newest round misses it, the
window is no longer stable, or the newest round is significantly worse than that window by a
one-sided exact test (Fisher's, computed here without scipy so that ``registry status`` starts fast).
Everything else is ``discovery``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from graduation.evidence import Z95, wilson_lower
from graduation.policy.facts import Summary
from graduation.policy.rounds import EMPTY, Round, Rounds

def samples_to_clear(bar: float, observed: float) -> tuple[int, int, float] | None:
    """(passes, samples, assumed rate): about how much evidence would lift the Wilson bound to ``bar``.

    Assumes future samples pass at the observed rate, or halfway between the bar and 1 if the observed
    rate is not above the bar (at or below it, no amount of samples can clear it). None if bar >= 1.
    """
    if bar >= 1.0:
        return None
    rate = observed if observed > bar + 1e-9 and observed < 1.0 else (bar + 1.0) / 2
    if observed >= 1.0:
        rate = 1.0
    if rate <= bar:
        return None
    # Wilson's bound equals the bar where (rate - bar)^2 = z^2 bar (1 - bar) / n; rounding needs a nudge
    n = max(1, math.ceil(Z95 * Z95 * bar * (1 - bar) / (rate - bar) ** 2))

    def passes(n: int) -> int:  # never more than n: near a bar of 1, rate * n rounds past n
        return min(n, round(rate * n))

    while wilson_lower(passes(n), n) < bar:
        n += 1
    while n > 1 and wilson_lower(passes(n - 1), n - 1) >= bar:
        n -= 1
    return passes(n), n, rate


def fisher_less(a: int, b: int, c: int, d: int) -> float:
    """One-sided Fisher exact p-value that row 1 ([a passes, b fails]) does worse than row 2 ([c, d]).

    P(X <= a) for X hypergeometric with the table's margins (``scipy.stats.fisher_exact(...,
    alternative='less')``).
    """
    row1, col1, total = a + b, a + c, a + b + c + d
    if total == 0 or row1 == 0 or col1 == 0 or row1 == total:
        return 1.0
    lo = max(0, row1 + col1 - total)
    hi = min(row1, col1)
    lg = math.lgamma
    const = lg(col1 + 1) + lg(total - col1 + 1) + lg(row1 + 1) + lg(total - row1 + 1) - lg(total + 1)

    def logpmf(x: int) -> float:
        return const - lg(x + 1) - lg(col1 - x + 1) - lg(row1 - x + 1) - lg(total - col1 - row1 + x + 1)

    mode = (row1 + 1) * (col1 + 1) // (total + 2)

    def tail(start: int, stop: int, step: int) -> float:
        # terms fall monotonically away from the mode: stop once they no longer change the sum
        acc = 0.0
        for x in range(start, stop, step):
            term = math.exp(logpmf(x))
            acc += term
            if term < acc * 1e-17:
                break
        return acc

    if a <= mode:
        p = tail(a, lo - 1, -1)
    else:
        p = 1.0 - tail(a + 1, hi + 1, 1)
    return min(1.0, max(0.0, p))


@dataclass(frozen=True, slots=True)
class PhaseResult:
    phase: str
    route: str
    unmet: tuple[str, ...]
    graduation: dict[str, Any]


def _num(x: int) -> str:
    return f"{x:,}"


def round_unmet(r: Round, t, slices: list[str]) -> tuple[list[str], list[str]]:
    """The per-round criteria ``r`` misses, with numbers; and the failing slices."""
    unmet: list[str] = []
    bar = t.min_wilson_lower
    if r.uncounted:
        unmet.append(f"not counted: scored by untrustworthy or unvalidated verifier(s) {', '.join(r.uncounted)} "
                     f"({r.label}); validate them (`registry verifiers check`) and evaluate again")
    if not r.prompts >= t.min_samples:  # written so that NaN, which compares false, is unmet (as in Rounds.meets)
        unmet.append(f"distinct prompts {_num(r.prompts)} < {_num(t.min_samples)} ({_num(r.n)} samples; samples of "
                     f"one prompt are one unit, {r.label})")
    if not r.coverage >= t.min_coverage:
        unmet.append(f"coverage {r.coverage:.0%} of the registered eval prompts < {t.min_coverage:.0%} ({r.label})")
    if not r.wilson_lower >= bar:
        rate = r.passed / r.n if r.n else 0.0
        msg = (f"Wilson lower bound {r.wilson_lower:.2f} < {bar:.2f} over {_num(r.prompts)} distinct prompts "
               f"({_num(r.passed)}/{_num(r.n)} samples passed, {r.label})")
        need = samples_to_clear(bar, rate)
        if need is not None:
            passes, n, assumed = need
            if n < t.min_samples:  # the sample floor binds first
                n = t.min_samples
                passes = round(assumed * n)
            msg += f"; about {_num(passes)} passing prompts in {_num(n)} would clear it"
            if assumed != rate:
                msg += f" (at a pass rate of {assumed:.3f})"
        unmet.append(msg)
    if not r.shape_gap <= t.max_shape_gap:
        unmet.append(f"shape gap {r.shape_gap:.2f} > {t.max_shape_gap:.2f}: outputs look right more often than "
                     f"they are right ({r.label})")
    failing: list[str] = []
    for name in slices:
        s = r.slices.get(name)
        if s is None:
            failing.append(name)
            unmet.append(f"slice {name}: no evidence in {r.label}")
        elif not s[2] >= bar:
            failing.append(name)
            rate = s[1] / s[0] if s[0] else 0.0
            unmet.append(f"slice {name}: Wilson lower bound {s[2]:.2f} < {bar:.2f} (pass rate {rate:.2f} "
                         f"on {_num(s[0])} samples, {r.label})")
    if t.min_pass_k > 0:
        if r.pass_k is None:
            unmet.append(f"pass^k consistency not measured ({r.label}): sample k answers per prompt; "
                         f"{t.min_pass_k:.2f} required")
        elif not r.pass_k >= t.min_pass_k:
            unmet.append(f"pass^{r.k} {r.pass_k:.2f} < {t.min_pass_k:.2f}; answers flip on "
                         f"{r.flip_rate:.0%} of prompts ({r.label})")
    return unmet, failing


@dataclass(slots=True)
class _Core:
    """What a phase is decided on (no messages): shared by ``compute_phase`` and ``decide_phase``."""

    phase: str
    route: str
    meets: list[bool]
    stable: int
    need: int
    newest_ok: bool
    verified: bool
    human_checked: int
    human_held_rate: float
    human_ok: bool
    was_graduated: bool
    window_end: int
    p_value: float
    significantly_worse: bool


def _core(facts: dict[str, Any], rounds: Rounds, t, checked: int, held_rate: float,
          external_route: bool) -> _Core:
    slices = facts["domain"]["slices"]
    verified = facts["verifiers"]["substance_validated"]
    need = max(2, t.stable_rounds)  # candidate before graduated, whatever a policy file says

    meets = rounds.meets(t, slices)
    stable = 0
    for ok in reversed(meets):
        if not ok:
            break
        stable += 1
    newest_ok = bool(meets) and meets[-1]

    human_ok = t.min_human_audit <= 0 or (checked >= t.min_human_audit and held_rate >= t.min_human_held_rate)

    # earliest window of `need` consecutive rounds meeting the bar: the rounds it graduated on
    window_end = -1
    run = 0
    for i, ok in enumerate(meets):
        run = run + 1 if ok else 0
        if run >= need:
            window_end = i
            break
    was_graduated = verified and window_end >= 0 and human_ok
    p_value = 1.0
    significantly_worse = False
    if was_graduated and window_end < len(meets) - 1:
        wp = sum(rounds.passed[window_end - need + 1: window_end + 1])
        wn = sum(rounds.n[window_end - need + 1: window_end + 1])
        passed, n = rounds.passed[-1], rounds.n[-1]
        # only a newest round that passes less often than the window can be significantly worse
        if passed * wn < wp * n:
            p_value = fisher_less(passed, n - passed, wp, wn - wp)
            significantly_worse = p_value < t.regression_alpha

    external = external_route and data_external(facts)
    internal = verified and stable >= need and human_ok and meets
    route = ""
    if external:
        phase, route = "graduated", "external"
    elif internal:
        phase, route = "graduated", "internal"
    elif newest_ok and verified:
        phase = "candidate"
    else:
        phase = "discovery"
    if was_graduated and (phase != "graduated" or significantly_worse) and window_end < len(meets) - 1:
        phase = "regressed"
        route = ""
    return _Core(phase, route, meets, stable, need, newest_ok, verified, checked, held_rate, human_ok,
                 bool(was_graduated), window_end, p_value, significantly_worse)


def compute_phase(summary: Summary, t, *, rounds: Rounds = EMPTY, human: dict[str, Any] | None = None,
                  external_route: bool = True) -> PhaseResult:
    """The phase of a summarized domain under thresholds ``t`` (one risk level's). Pure.

    ``rounds``/``human``: one model's rounds (default: none) and human audit (default: the summary's);
    ``external_route`` False for a model's phase, which only its own verified rounds can earn.
    """
    facts = summary.facts
    human = facts["human"] if human is None else human
    return _result(facts, rounds, t, _core(facts, rounds, t, human["checked"], human["held_rate"], external_route))


def _result(facts: dict[str, Any], rounds: Rounds, t, core: _Core) -> PhaseResult:
    """``core`` with its messages: the unmet criteria and the ``graduation`` facts."""
    slices = facts["domain"]["slices"]
    verifiers = facts["verifiers"]
    phase, stable, need = core.phase, core.stable, core.need
    human_unmet: list[str] = []
    if t.min_human_audit > 0:
        if core.human_checked < t.min_human_audit:
            human_unmet.append(f"human audit: {_num(core.human_checked)} items checked < {_num(t.min_human_audit)}")
        elif core.human_held_rate < t.min_human_held_rate:
            human_unmet.append(f"human audit: {core.human_held_rate:.2f} of checked items held < "
                               f"{t.min_human_held_rate:.2f}")

    unmet: list[str] = []
    if not core.verified:
        if verifiers["substance"] == 0:
            unmet.append("no substance verifier declared: nothing can tell right from wrong; write one")
        elif verifiers["untrustworthy"]:
            unmet.append("untrustworthy verifier(s) " + ", ".join(verifiers["untrustworthy"]) +
                         ": they accept known-wrong controls or reject references")
        else:
            unmet.append("no validated substance verifier: validate " + ", ".join(verifiers["unvalidated"]) +
                         " against references and controls")
    if phase == "regressed" and core.significantly_worse:
        newest = rounds.at(-1)
        unmet.append(f"newest round ({newest.label}, {newest.passed}/{newest.n}) is significantly worse than the "
                     f"rounds it graduated on (one-sided exact test p={core.p_value:.2g} < {t.regression_alpha:g})")

    newest_unmet: list[str] = []
    failing: list[str] = []
    if core.meets and not core.newest_ok:
        newest_unmet, failing = round_unmet(rounds.at(-1), t, slices)
    if phase != "graduated":
        if not core.meets:
            unmet.append("no evaluation rounds yet: evaluate the model on held-out prompts (`registry evaluate`)")
        unmet.extend(newest_unmet)
        if core.meets and stable < need:
            unmet.append(f"stable rounds {stable} < {need}")
        unmet.extend(human_unmet)
    graduation = {
        "route": core.route, "meets_bar": core.newest_ok, "stable_rounds": stable,
        "required_rounds": need, "failing_slices": (failing if core.meets else list(slices)) or (),
        "was_graduated": core.was_graduated, "regression_p": float(core.p_value), "human_audit_ok": core.human_ok,
        "unmet": unmet if phase != "graduated" and unmet else (),
    }
    return PhaseResult(phase, core.route, tuple(graduation["unmet"]), graduation)


def data_external(facts: dict[str, Any]) -> bool:
    """The external route of data trust: audited authoritative/expert sources and a validated verifier that
    accepts every reference."""
    v = facts["verifiers"]
    return bool(facts["domain"]["external_sources"]) and v["substance_validated"] and v["references_verified"]


_RANK = {"graduated": 3, "candidate": 2, "regressed": 1, "discovery": 0}


def _model_phase(facts: dict[str, Any], rounds: Rounds, t, human: tuple[int, int]) -> str | _Core:
    """One model's phase (internal route only), without its messages: ``_core``'s answer (the core itself when
    it had to be worked out), taken the short way where the rounds settle it. Without a validated substance
    verifier no phase but discovery can be reached; with fewer rounds than the stable window, neither
    graduated nor (so) regressed: the newest round alone says candidate or discovery."""
    if not facts["verifiers"]["substance_validated"]:
        return "discovery"
    if len(rounds) < max(2, t.stable_rounds):
        return "candidate" if rounds.meets_at(-1, t, facts["domain"]["slices"]) else "discovery"
    return _model_core(facts, rounds, t, human)


def _model_core(facts: dict[str, Any], rounds: Rounds, t, human: tuple[int, int]) -> _Core:
    checked, held = human
    return _core(facts, rounds, t, checked, held / checked if checked else 0.0, False)


def decide_phase(summary: Summary, t) -> PhaseResult:
    """Data trust and model trust, kept apart. Fills the ``data_trust``, ``models`` and generator facts. Pure.

    For a model decision (``summary.model``), the phase is that model's own (internal route only; the
    external route never graduates an artifact). For a domain decision, the phase is ``graduated`` when
    data trust holds (external route, or internal: a model graduated here), else the most advanced phase
    of its models (regressed before candidate before discovery).
    """
    facts = summary.facts
    # every model's phase decides which are graduated and which leads; only the one returned needs its messages
    by_model, human_by_model = summary.rounds_by_model, summary.human_by_model
    found = {key: _model_phase(facts, rounds, t, human_by_model.get(key, (0, 0))) for key, rounds in by_model.items()}
    phases = {key: p if isinstance(p, str) else p.phase for key, p in found.items()}
    graduated = sorted(k for k, phase in phases.items() if phase == "graduated")
    route = "external" if data_external(facts) else "internal" if graduated else ""
    facts["data_trust"] = {"granted": bool(route), "route": route, "graduated_models": graduated}
    facts["models"] = {"evaluated": sorted(phases), "graduated": graduated}

    def result(key: str) -> PhaseResult:
        rounds, core = by_model[key], found[key]
        if isinstance(core, str):
            core = _model_core(facts, rounds, t, human_by_model.get(key, (0, 0)))
        return _result(facts, rounds, t, core)

    def ungraduated(names) -> list[str]:
        out = []
        for name in names:
            resolved = summary.generators.get(name, name)
            if resolved is None:
                out.append(f"{name} (not a registered model)")
            elif resolved not in graduated:
                out.append(name if resolved == name else f"{name} ({resolved})")
        return out

    gt = ungraduated(summary.gt_generators)
    facts["domain"]["ungraduated_generators"] = gt or ()
    data = set(ungraduated(summary.generators)) | set(summary.declared_ungraduated)
    facts["data"]["ungraduated_generators"] = sorted(data) or ()

    if summary.model is not None:
        if summary.model in phases:
            return result(summary.model)
        own = compute_phase(summary, t, external_route=False)
        unmet = tuple(u.replace("evaluate the model", f"evaluate {summary.model}") for u in own.unmet)
        return PhaseResult(own.phase, own.route, unmet, {**own.graduation, "unmet": unmet})
    if route == "external":
        return compute_phase(summary, t, external_route=True)
    if route == "internal":
        best = result(graduated[-1])
        return PhaseResult("graduated", "internal", (), {**best.graduation, "route": "internal", "unmet": ()})
    if not phases:
        return compute_phase(summary, t, external_route=False)
    return result(max(phases, key=lambda k: (_RANK[phases[k]], by_model[k].seq[-1])))


__all__ = ["PhaseResult", "Round", "Z95", "compute_phase", "data_external", "decide_phase", "fisher_less",
           "round_unmet", "samples_to_clear", "wilson_lower"]
