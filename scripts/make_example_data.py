#!/usr/bin/env python3
"""Generate the data of the example domains under ``domains/data/<domain>/`` (fixed seeds, byte-reproducible).

    python scripts/make_example_data.py                # writes domains/data/
    python scripts/make_example_data.py --out /tmp/x   # writes elsewhere (the tests compare two runs)
    python scripts/make_example_data.py --check        # exit 1 if the committed files differ from a fresh run

Domains (see domains/README.md for what each one shows):
  hamiltonian-mechanics  expert equations of motion computed with sympy (dq/dt = dH/dp, dp/dt = -dH/dq),
                         a held-out split, known-wrong controls, a distilled set written by an ungraduated
                         model in which 40% of answers carry the invented parameter ``golden_hour_sun``,
                         8 model outputs of which 7 are right, and a person's audit of 20 distilled rows.
  acls-cardiac-arrest    scenarios rendered from an adult cardiac-arrest protocol table (rhythm -> shock,
                         drug, dose, timing) as JSON answers, controls, model outputs that verify, and a
                         clinician's per-item audit.
  pedestrian-perception  road-user classification from track descriptions; outputs with 4 samples per
                         prompt: right at crosswalks, wrong and flipping between labels outside them.
  arith-reasoning-gym    reasoning-gym's ``basic_arithmetic`` entries (question, answer, metadata) and
                         outputs with planted wrong answers.

Nothing here downloads anything; sympy and reasoning-gym are the only dependencies beyond the stdlib.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "domains" / "data"
GOLDEN = "golden_hour_sun"
INSTRUCT_MODEL = "some-instruct-32b"

Row = dict[str, Any]


# -- writing ---------------------------------------------------------------------------------------------

def dumps(row: Any) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


def write_jsonl(path: Path, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8", newline="\n")


# == hamiltonian-mechanics ==============================================================================

def _hamiltonian_systems(rng: random.Random) -> list[dict]:
    """Every candidate system: (kind, H, coordinates, momenta), many with numeric parameters."""
    import sympy as sp

    q, p, m, k, g, l, omega = sp.symbols("q p m k g l omega")
    q1, q2, p1, p2 = sp.symbols("q1 q2 p1 p2")
    r, theta, p_r, p_theta = sp.symbols("r theta p_r p_theta")
    x, y, p_x, p_y = sp.symbols("x y p_x p_y")
    R = sp.Rational
    systems: list[dict] = []

    def add(kind: str, H, coords, momenta, description: str):
        systems.append({"system": kind, "H": H, "coords": coords, "momenta": momenta,
                        "description": description})

    for mv in range(1, 7):
        for kv in range(1, 10):
            add("harmonic_oscillator", p**2 / (2 * mv) + R(kv, 2) * q**2, [q], [p],
                f"a harmonic oscillator of mass {mv} and spring constant {kv}")
    add("harmonic_oscillator", p**2 / (2 * m) + k * q**2 / 2, [q], [p],
        "a harmonic oscillator of mass m and spring constant k")
    add("harmonic_oscillator", p**2 / (2 * m) + m * omega**2 * q**2 / 2, [q], [p],
        "a harmonic oscillator of mass m and angular frequency omega")
    for mv in range(1, 5):
        for lv in range(1, 5):
            add("pendulum_small_angle", p**2 / (2 * mv * lv**2) + R(mv * lv, 2) * g * q**2, [q], [p],
                f"a pendulum of mass {mv} and length {lv} at small angles (gravity g)")
            add("pendulum", p**2 / (2 * mv * lv**2) - mv * lv * g * sp.cos(q), [q], [p],
                f"a plane pendulum of mass {mv} and length {lv} (gravity g)")
    for mv in range(1, 6):
        add("falling_particle", p**2 / (2 * mv) + mv * g * q, [q], [p],
            f"a particle of mass {mv} in uniform gravity g (q is the height)")
    for mv in range(1, 5):
        for av in range(1, 6):
            add("quartic_potential", p**2 / (2 * mv) + av * q**4, [q], [p],
                f"a particle of mass {mv} in the potential {av}*q**4")
            for bv in range(1, 4):
                add("double_well", p**2 / (2 * mv) + av * q**4 - bv * q**2, [q], [p],
                    f"a particle of mass {mv} in the double-well potential {av}*q**4 - {bv}*q**2")
    for mv in range(1, 4):
        for kv in range(1, 5):
            for cv in range(1, 3):
                add("anharmonic_oscillator", p**2 / (2 * mv) + R(kv, 2) * q**2 + cv * q**3, [q], [p],
                    f"an anharmonic oscillator of mass {mv}, spring constant {kv} and cubic term {cv}*q**3")
    for mv in range(1, 3):
        for dv in range(1, 4):
            for av in range(1, 3):
                add("morse_potential", p**2 / (2 * mv) + dv * (1 - sp.exp(-av * q))**2, [q], [p],
                    f"a particle of mass {mv} in a Morse potential of depth {dv} and width parameter {av}")
    for mv in range(1, 4):
        for kv in range(1, 4):
            for cv in range(1, 3):
                H = (p1**2 + p2**2) / (2 * mv) + R(kv, 2) * (q1**2 + q2**2) + R(cv, 2) * (q1 - q2)**2
                add("coupled_oscillators", H, [q1, q2], [p1, p2],
                    f"two oscillators of mass {mv} and spring constant {kv}, coupled by a spring {cv}")
    for mv in range(1, 4):
        for kv in range(1, 4):
            H = p_r**2 / (2 * mv) + p_theta**2 / (2 * mv * r**2) - kv / r
            add("central_potential", H, [r, theta], [p_r, p_theta],
                f"a particle of mass {mv} in the attractive potential -{kv}/r, in polar coordinates")
    for mv in range(1, 4):
        for kx in range(1, 4):
            for ky in range(1, 4):
                H = (p_x**2 + p_y**2) / (2 * mv) + R(kx, 2) * x**2 + R(ky, 2) * y**2
                add("oscillator_2d", H, [x, y], [p_x, p_y],
                    f"a particle of mass {mv} in a 2D oscillator with spring constants {kx} (x) and {ky} (y)")
    rng.shuffle(systems)
    return systems


def hamilton_equations(H, coords, momenta) -> list[tuple[str, Any]]:
    """[(variable, time derivative)] in the order coordinates, then momenta: dq/dt = dH/dp, dp/dt = -dH/dq."""
    import sympy as sp

    eqs = [(str(qi), sp.expand(sp.diff(H, pi))) for qi, pi in zip(coords, momenta)]
    eqs += [(str(pi), sp.expand(-sp.diff(H, qi))) for qi, pi in zip(coords, momenta)]
    return eqs


def format_equations(eqs: list[tuple[str, Any]]) -> str:
    return ", ".join(f"d{v}/dt = {expr}" for v, expr in eqs)


def _hamiltonian_prompt(system: dict) -> str:
    coords = ", ".join(str(c) for c in system["coords"])
    momenta = ", ".join(str(c) for c in system["momenta"])
    form = ", ".join(f"d{v}/dt = ..." for v in [*map(str, system["coords"]), *map(str, system["momenta"])])
    return (f"The Hamiltonian of {system['description']} is H = {system['H']} "
            f"(coordinates {coords}; conjugate momenta {momenta}). "
            f"Derive Hamilton's equations of motion. Answer in the form: {form}")


def _hamiltonian_row(row_id: str, system: dict) -> Row:
    eqs = hamilton_equations(system["H"], system["coords"], system["momenta"])
    return {"id": row_id, "system": system["system"], "hamiltonian": str(system["H"]),
            "coordinates": [str(c) for c in system["coords"]], "momenta": [str(c) for c in system["momenta"]],
            "prompt": _hamiltonian_prompt(system), "answer": format_equations(eqs)}


def _equivalent_rewrite(eqs: list[tuple[str, Any]], rng: random.Random) -> str:
    """The same equations written differently (decimals, factored): what a careful model might write."""
    import sympy as sp

    parts = []
    for v, expr in eqs:
        choice = rng.random()
        if choice < 0.3 and expr.free_symbols:
            text = str(sp.factor(expr))
        elif choice < 0.55:
            text = str(expr.evalf(4))
            text = text if _readable_decimal(text, expr) else str(expr)
        else:
            text = str(expr)
        parts.append(f"d{v}/dt = {text}")
    return ", ".join(parts)


def _readable_decimal(text: str, expr) -> bool:
    """Keep a decimal rendering only when it is exact (no rounding of thirds and the like)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from domains.verifiers.hamiltonian import ParseError, expressions_equal, parse_expression

    try:
        return expressions_equal(parse_expression(text), expr)
    except ParseError:
        return False


def _inject_golden(eqs: list[tuple[str, Any]], rng: random.Random) -> str:
    """A well-formatted answer with the invented parameter golden_hour_sun folded into one equation."""
    import sympy as sp

    sun = sp.Symbol(GOLDEN)
    index = rng.randrange(len(eqs))
    v, expr = eqs[index]
    variables = sorted({s for _, e in eqs for s in e.free_symbols} | {sp.Symbol(eqs[0][0])}, key=str)
    style = rng.randrange(4)
    if style == 0:
        new = expr - sun * sp.Symbol(v)  # a made-up damping term
    elif style == 1:
        new = expr * (1 + sun)  # a made-up correction factor
    elif style == 2:
        new = expr + sun * rng.choice(variables)
    else:
        new = expr + sun
    out = list(eqs)
    out[index] = (v, sp.expand(new) if style != 1 else new)
    return format_equations(out)


def _wrong_variants(eqs: list[tuple[str, Any]], rng: random.Random) -> list[tuple[str, str]]:
    """Known-wrong answers with the mistake they make (the controls every substance verifier must reject)."""
    import sympy as sp

    coords = [v for v, _ in eqs[: len(eqs) // 2]]
    momenta = [v for v, _ in eqs[len(eqs) // 2:]]
    n = len(coords)
    out = []
    flipped = [(v, -e if i >= n else e) for i, (v, e) in enumerate(eqs)]
    out.append((format_equations(flipped), "sign error: dp/dt = +dH/dq"))
    doubled = [(v, 2 * e if i < n else e) for i, (v, e) in enumerate(eqs)]
    out.append((format_equations(doubled), "factor 2 too large in dq/dt"))
    swapped = [(coords[i], eqs[n + i][1]) for i in range(n)] + [(momenta[i], eqs[i][1]) for i in range(n)]
    out.append((format_equations(swapped), "right-hand sides of dq/dt and dp/dt swapped"))
    out.append((format_equations(eqs[:n]), "equations for the momenta missing"))
    out.append((_inject_golden(eqs, rng), f"invented parameter {GOLDEN}"))
    return out


def make_hamiltonian(out: Path) -> None:
    rng = random.Random(1834)  # Hamilton's year
    systems = _hamiltonian_systems(rng)
    seen: set[str] = set()
    unique = []
    for system in systems:
        key = str(system["H"])
        if key not in seen:
            seen.add(key)
            unique.append(system)
    # Held-out: 24 systems, at least one of every kind; textbook: the next 120.
    kinds = sorted({s["system"] for s in unique})
    eval_systems = [next(s for s in unique if s["system"] == kind) for kind in kinds]
    rest = [s for s in unique if not any(s is e for e in eval_systems)]
    eval_systems += rest[: 24 - len(eval_systems)]
    train_systems = rest[24 - len(kinds): 24 - len(kinds) + 120]
    textbook = [_hamiltonian_row(f"ham-{i:04d}", s) for i, s in enumerate(train_systems)]
    held_out = [_hamiltonian_row(f"ham-{1000 + i:04d}", s) for i, s in enumerate(eval_systems)]

    d = out / "hamiltonian-mechanics"
    write_jsonl(d / "textbook.jsonl", textbook)
    write_jsonl(d / "eval.jsonl", held_out)

    # The distilled set: the textbook prompts answered by an ungraduated instruct model. 48 of 120 (40%)
    # carry golden_hour_sun; every answer keeps the exact canonical shape, so the format check passes.
    golden_rows = set(rng.sample(range(len(textbook)), k=len(textbook) * 2 // 5))
    distilled = []
    for i, (row, system) in enumerate(zip(textbook, train_systems)):
        eqs = hamilton_equations(system["H"], system["coords"], system["momenta"])
        answer = _inject_golden(eqs, rng) if i in golden_rows else _equivalent_rewrite(eqs, rng)
        distilled.append({**row, "id": f"ham-{2000 + i:04d}", "answer": answer})
    write_jsonl(d / "distilled.jsonl", distilled)

    controls = []
    for row, system in zip(held_out[:6], eval_systems[:6]):
        eqs = hamilton_equations(system["H"], system["coords"], system["momenta"])
        for wrong, why in _wrong_variants(eqs, rng):
            controls.append({"id": row["id"], "prompt": row["prompt"], "hamiltonian": row["hamiltonian"],
                             "answer": row["answer"], "output": wrong, "mistake": why})
    write_jsonl(d / "known_wrong.jsonl", controls)

    # 8 outputs of a candidate model on held-out prompts: 7 right (some written differently), 1 sign error.
    outputs = []
    for i, (row, system) in enumerate(zip(held_out[:8], eval_systems[:8])):
        eqs = hamilton_equations(system["H"], system["coords"], system["momenta"])
        if i == 5:
            text = _wrong_variants(eqs, rng)[0][0]
        else:
            text = _equivalent_rewrite(eqs, rng)
        outputs.append({"id": row["id"], "prompt": row["prompt"], "sample": 0, "output": text})
    write_jsonl(d / "outputs.jsonl", outputs)

    # A physicist checked 20 distilled rows by hand: the ones with golden_hour_sun do not hold. Each item
    # is keyed by the textbook prompt it answers (``id``), so that `registry evidence add --items` re-verifies
    # the distilled answer (``output``) against the trusted reference and reports the agreement.
    audited = rng.sample(range(len(distilled)), k=20)
    audit = []
    for i in sorted(audited):
        bad = i in golden_rows
        note = f"{GOLDEN} is not a parameter of this system" if bad else "equations check out"
        audit.append({"id": textbook[i]["id"], "distilled_id": distilled[i]["id"],
                      "output": distilled[i]["answer"], "verdict": "fail" if bad else "pass", "note": note})
    write_jsonl(d / "audit_distilled.jsonl", audit)


# == acls-cardiac-arrest =================================================================================

ACLS_PROTOCOL = {
    "title": "Adult cardiac arrest: rhythm-check decisions (illustrative table for the graduation example)",
    "source": "structure of the 2020 AHA adult cardiac arrest algorithm (ACLS); NOT clinical guidance",
    "audited": True,
    "rules": [
        {"when": "VF or pVT, no shock delivered yet",
         "then": "shock; CPR 2 min; obtain IV/IO access; no drug yet"},
        {"when": "VF or pVT persists after the 1st shock",
         "then": "shock; CPR 2 min; epinephrine 1 mg IV/IO, repeat every 3-5 min"},
        {"when": "VF or pVT persists after the 2nd shock",
         "then": "shock; CPR 2 min; amiodarone 300 mg IV/IO bolus (first dose)"},
        {"when": "VF or pVT persists after the 4th shock, first amiodarone dose given",
         "then": "shock; CPR 2 min; amiodarone 150 mg IV/IO (second dose)"},
        {"when": "VF or pVT, later cycles",
         "then": "shock; CPR 2 min; epinephrine 1 mg IV/IO if the last dose was 3 or more minutes ago"},
        {"when": "asystole or PEA, no epinephrine yet",
         "then": "no shock; CPR 2 min; epinephrine 1 mg IV/IO as soon as possible, repeat every 3-5 min"},
        {"when": "asystole or PEA, epinephrine given before",
         "then": "no shock; CPR 2 min; epinephrine 1 mg IV/IO if the last dose was 3 or more minutes ago"},
        {"when": "return of spontaneous circulation (ROSC)",
         "then": "no shock; stop CPR; post-cardiac arrest care"},
    ],
}

RHYTHM_TEXT = {"VF": "ventricular fibrillation", "pVT": "pulseless ventricular tachycardia",
               "asystole": "asystole", "PEA": "pulseless electrical activity",
               "ROSC": "an organized rhythm with a palpable pulse"}


def acls_decision(rhythm: str, shocks: int, epi_minutes_ago: int | None, amiodarone_doses: int) -> dict:
    """The protocol table, applied: what to do at this rhythm check."""
    epinephrine = {"drug": "epinephrine", "dose_mg": 1, "route": "IV/IO"}
    if rhythm == "ROSC":
        return {"rhythm": rhythm, "shock": False, "cpr_minutes": 0, "drugs": [],
                "next": "post_cardiac_arrest_care"}
    drugs: list[dict] = []
    if rhythm in ("VF", "pVT"):
        if shocks == 1 and epi_minutes_ago is None:
            drugs.append({**epinephrine, "timing": "after_shock_repeat_every_3_5_min"})
        elif shocks == 2 and amiodarone_doses == 0:
            drugs.append({"drug": "amiodarone", "dose_mg": 300, "route": "IV/IO", "timing": "now_first_dose"})
        elif shocks >= 4 and amiodarone_doses == 1:
            drugs.append({"drug": "amiodarone", "dose_mg": 150, "route": "IV/IO",
                          "timing": "now_second_dose"})
        elif shocks >= 1 and epi_minutes_ago is not None and epi_minutes_ago >= 3:
            drugs.append({**epinephrine, "timing": "now_repeat_every_3_5_min"})
        return {"rhythm": rhythm, "shock": True, "cpr_minutes": 2, "drugs": drugs, "next": "rhythm_check"}
    if epi_minutes_ago is None:
        drugs.append({**epinephrine, "timing": "asap"})
    elif epi_minutes_ago >= 3:
        drugs.append({**epinephrine, "timing": "now_repeat_every_3_5_min"})
    return {"rhythm": rhythm, "shock": False, "cpr_minutes": 2, "drugs": drugs, "next": "rhythm_check"}


def _acls_states() -> list[tuple[str, int, int | None, int]]:
    """Consistent (rhythm, shocks so far, minutes since epinephrine, amiodarone doses) states."""
    states = []
    for rhythm in ("VF", "pVT"):
        states.append((rhythm, 0, None, 0))
        states.append((rhythm, 1, None, 0))
        for epi in (1, 2):
            states.append((rhythm, 2, epi, 0))
        for epi in (4, 5):
            states.append((rhythm, 3, epi, 1))
        for epi in (1, 2):
            states.append((rhythm, 4, epi, 1))
        for shocks in (5, 6):
            for epi in (1, 2, 4, 5):
                states.append((rhythm, shocks, epi, 2))
    for rhythm in ("asystole", "PEA"):
        states.append((rhythm, 0, None, 0))
        for epi in (1, 2, 4, 5):
            states.append((rhythm, 0, epi, 0))
    states.append(("ROSC", 3, 2, 1))
    states.append(("ROSC", 0, 4, 0))
    return states


def _acls_prompt(rng: random.Random, state: tuple[str, int, int | None, int]) -> str:
    rhythm, shocks, epi, amio = state
    setting = rng.choice(["In-hospital", "Out-of-hospital", "Emergency department"])
    age = rng.randrange(24, 88)
    sex = rng.choice(["man", "woman"])
    access = rng.choice(["IV", "IO"])
    epi_text = "none given yet" if epi is None else f"last 1 mg dose {epi} minutes ago"
    amio_text = {0: "none given", 1: "300 mg given", 2: "300 mg and 150 mg given"}[amio]
    return (f"{setting} cardiac arrest, {age}-year-old {sex}, CPR in progress, {access} access in place. "
            f"Rhythm check shows {RHYTHM_TEXT[rhythm]}. Shocks delivered so far: {shocks}. "
            f"Epinephrine: {epi_text}. Amiodarone: {amio_text}. "
            "What is the next step? Answer as JSON with keys rhythm, shock, cpr_minutes, drugs "
            "(each with drug, dose_mg, route, timing) and next.")


def _shuffled_json(value: dict, rng: random.Random) -> str:
    """The same JSON object with its keys in another order (what a model writes; equality ignores order)."""
    def shuffle(v):
        if isinstance(v, dict):
            items = list(v.items())
            rng.shuffle(items)
            return {k: shuffle(x) for k, x in items}
        if isinstance(v, list):
            return [shuffle(x) for x in v]
        return v

    return json.dumps(shuffle(value))


def make_acls(out: Path) -> None:
    rng = random.Random(2020)
    d = out / "acls-cardiac-arrest"
    write_json(d / "protocol.json", ACLS_PROTOCOL)
    rows = []
    prompts: set[str] = set()
    for state in _acls_states() * 3:
        prompt = _acls_prompt(rng, state)
        if prompt in prompts:
            continue
        prompts.add(prompt)
        rows.append({"prompt": prompt, "rhythm": state[0], "shocks_delivered": state[1],
                     "epinephrine_minutes_ago": state[2], "amiodarone_doses": state[3],
                     "answer": acls_decision(*state)})
    rng.shuffle(rows)
    rows = [{"id": f"acls-{i:04d}", **row} for i, row in enumerate(rows)]
    held_out, train = rows[:24], rows[24:]
    write_jsonl(d / "protocol_scenarios.jsonl", train)
    write_jsonl(d / "eval.jsonl", held_out)

    controls = []
    for row in held_out[:10]:
        answer = row["answer"]
        wrong_shock = {**answer, "shock": not answer["shock"]} if answer["rhythm"] != "ROSC" else \
            {**answer, "cpr_minutes": 2, "next": "rhythm_check"}
        mistake = "shock decision inverted" if answer["rhythm"] != "ROSC" else "CPR continued after ROSC"
        controls.append({"id": row["id"], "prompt": row["prompt"], "answer": answer,
                         "output": json.dumps(wrong_shock), "mistake": mistake})
        if answer["drugs"]:
            first = answer["drugs"][0]
            dose = {"epinephrine": 10, "amiodarone": 450}[first["drug"]]
            wrong_dose = {**answer, "drugs": [{**first, "dose_mg": dose}, *answer["drugs"][1:]]}
            controls.append({"id": row["id"], "prompt": row["prompt"], "answer": answer,
                             "output": json.dumps(wrong_dose), "mistake": f"{first['drug']} dose {dose} mg"})
            wrong_drug = {**answer, "drugs": []}
            controls.append({"id": row["id"], "prompt": row["prompt"], "answer": answer,
                             "output": json.dumps(wrong_drug), "mistake": f"{first['drug']} omitted"})
        elif answer["rhythm"] in ("VF", "pVT"):
            extra = {**answer, "drugs": [{"drug": "epinephrine", "dose_mg": 1, "route": "IV/IO",
                                          "timing": "now_repeat_every_3_5_min"}]}
            controls.append({"id": row["id"], "prompt": row["prompt"], "answer": answer,
                             "output": json.dumps(extra), "mistake": "epinephrine given too early"})
    write_jsonl(d / "known_wrong.jsonl", controls)

    outputs = [{"id": row["id"], "prompt": row["prompt"], "sample": 0,
                "output": _shuffled_json(row["answer"], rng)} for row in held_out]
    write_jsonl(d / "outputs.jsonl", outputs)

    # A clinician checked every held-out output by hand against the protocol: all hold. With ``output`` the
    # verifiers re-check each item, so the report shows verifier-person agreement.
    audit = [{"id": out_row["id"], "output": out_row["output"], "verdict": "pass",
              "note": "matches the protocol table"} for out_row in outputs]
    write_jsonl(d / "audit_outputs.jsonl", audit)


# == pedestrian-perception ===============================================================================

LABELS = ("pedestrian", "vehicle", "bicycle", "unknown")
_SIZE = {"pedestrian": ((0.4, 0.8), (0.4, 0.7), (0.6, 1.8)), "bicycle": ((1.5, 1.9), (0.5, 0.8), (3.0, 7.5)),
         "vehicle": ((3.8, 5.2), (1.6, 2.0), (2.0, 14.0)), "unknown": ((0.2, 0.5), (0.2, 0.4), (0.0, 3.0))}


def _track_frames(rng: random.Random, track: int, label: str, at_crosswalk: bool, frames: int) -> list[Row]:
    (l0, l1), (w0, w1), (s0, s1) = _SIZE[label]
    length, width, speed = rng.uniform(l0, l1), rng.uniform(w0, w1), rng.uniform(s0, s1)
    if label == "vehicle" and at_crosswalk:
        speed = rng.uniform(0.5, 4.0)  # slowing for the crossing
    heading = rng.randrange(0, 360)
    rows = []
    for frame in range(frames):
        jitter = lambda v, f: round(max(0.05, v * (1 + rng.uniform(-f, f))), 2)
        row = {"id": f"trk-{track:03d}-f{frame}", "track": track, "frame": frame,
               "speed_mps": jitter(speed, 0.08), "length_m": jitter(length, 0.05),
               "width_m": jitter(width, 0.05), "heading_deg": (heading + rng.randrange(-6, 7)) % 360,
               "at_crosswalk": at_crosswalk}
        row["prompt"] = (f"Track {track}, frame {frame}: speed {row['speed_mps']} m/s, "
                         f"length {row['length_m']} m, width {row['width_m']} m, "
                         f"heading {row['heading_deg']} deg, at crosswalk: "
                         f"{'yes' if at_crosswalk else 'no'}. Classify the road user: pedestrian, vehicle, "
                         "bicycle or unknown.")
        row["answer"] = label
        rows.append(row)
    return rows


def make_pedestrian(out: Path) -> None:
    rng = random.Random(2018)
    d = out / "pedestrian-perception"
    frames = 4
    train: list[Row] = []
    plan = (["pedestrian"] * 9 + ["vehicle"] * 9 + ["bicycle"] * 6 + ["unknown"] * 2)
    for i, label in enumerate(plan):
        at_crosswalk = label != "unknown" and (i % 3 != 0)
        train += _track_frames(rng, 1 + i, label, at_crosswalk, frames)
    write_jsonl(d / "train.jsonl", train)

    # Held-out: 16 tracks at crosswalks, 4 outside (3 pedestrians crossing mid-block, 1 vehicle).
    eval_plan = [("pedestrian", True)] * 7 + [("vehicle", True)] * 5 + [("bicycle", True)] * 4 + \
                [("pedestrian", False)] * 3 + [("vehicle", False)]
    held_out: list[Row] = []
    for i, (label, at_crosswalk) in enumerate(eval_plan):
        held_out += _track_frames(rng, 101 + i, label, at_crosswalk, frames)
    write_jsonl(d / "eval.jsonl", held_out)

    # k = 4 samples per prompt. At crosswalks the model is right (two slips in 256 samples). Outside them a
    # pedestrian is seen as vehicle, bicycle or unknown, and the label changes from sample to sample and from
    # frame to frame: the aggregate looks fine, the slice and the flip rate do not.
    k = 4
    crosswalk_items = [(row, s) for row in held_out if row["at_crosswalk"] for s in range(k)]
    slips = set(rng.sample(range(len(crosswalk_items)), k=2))
    slip_keys = {(crosswalk_items[i][0]["id"], crosswalk_items[i][1]) for i in slips}
    outputs = []
    for row in held_out:
        previous = None
        for sample in range(k):
            label = row["answer"]
            if (row["id"], sample) in slip_keys:
                label = "unknown"
            elif not row["at_crosswalk"] and label == "pedestrian":
                choices = [c for c in ("vehicle", "bicycle", "unknown", "pedestrian") if c != previous]
                label = rng.choices(choices, weights=[3 if c != "pedestrian" else 1 for c in choices])[0]
            previous = label
            outputs.append({"id": row["id"], "sample": sample, "track": row["track"], "frame": row["frame"],
                            "at_crosswalk": row["at_crosswalk"], "prompt": row["prompt"], "output": label})
    write_jsonl(d / "outputs.jsonl", outputs)

    controls = []
    for row in held_out[::8]:
        for wrong in LABELS:
            if wrong != row["answer"]:
                controls.append({"id": row["id"], "prompt": row["prompt"], "answer": row["answer"],
                                 "output": wrong, "mistake": f"{row['answer']} labelled {wrong}"})
    write_jsonl(d / "known_wrong.jsonl", controls)


# == arith-reasoning-gym =================================================================================

def _gym_rows(size: int, seed: int, prefix: str) -> list[Row]:
    import reasoning_gym

    dataset = reasoning_gym.create_dataset("basic_arithmetic", size=size, seed=seed)
    rows = []
    for i, entry in enumerate(dataset):
        rows.append({"id": f"{prefix}-{i:04d}", "question": entry["question"], "answer": entry["answer"],
                     "metadata": json.loads(json.dumps(entry["metadata"]))})
    return rows


def make_arith(out: Path) -> None:
    d = out / "arith-reasoning-gym"
    train = _gym_rows(200, 101, "ba-train")
    # held out means held out: reasoning-gym draws the same first entries whatever the seed, so the held-out
    # entries are the first 40 of a longer draw whose question is not a training question
    seen = {row["question"].strip().casefold() for row in train}
    held_out = [row for row in _gym_rows(400, 202, "ba-eval") if row["question"].strip().casefold() not in seen][:40]
    held_out = [{**row, "id": f"ba-eval-{i:04d}"} for i, row in enumerate(held_out)]
    assert len(held_out) == 40, "not enough held-out entries distinct from the training entries"
    write_jsonl(d / "train.jsonl", train)
    write_jsonl(d / "eval.jsonl", held_out)
    rng = random.Random(303)
    planted = set(rng.sample(range(len(held_out)), k=6))
    outputs = []
    for i, row in enumerate(held_out):
        answer = row["answer"]
        if i in planted:
            value = int(answer)
            answer = str(rng.choice([w for w in (value + 1, value - 10, -value, value * 10) if w != value]))
        outputs.append({"id": row["id"], "question": row["question"], "sample": 0, "output": answer,
                        "planted_error": i in planted})
    write_jsonl(d / "outputs.jsonl", outputs)
    controls = []
    for row in held_out[:8]:
        value = int(row["answer"])
        for wrong, why in ((value + 1, "off by one"), (value - 100, "dropped a term"),
                           (-value if value else 1, "sign flipped")):
            controls.append({"id": row["id"], "question": row["question"], "answer": row["answer"],
                             "metadata": row["metadata"], "output": str(wrong), "mistake": why})
    write_jsonl(d / "known_wrong.jsonl", controls)


# == driver ==============================================================================================

GENERATORS = {"hamiltonian-mechanics": make_hamiltonian, "acls-cardiac-arrest": make_acls,
              "pedestrian-perception": make_pedestrian, "arith-reasoning-gym": make_arith}


MANIFEST = "examples.manifest.json"


def generator_versions() -> dict[str, str]:
    """The versions whose output the committed files are: sympy prints the equations, reasoning-gym draws
    the arithmetic entries. A different version may legitimately write different (equally valid) bytes."""
    from importlib.metadata import version

    return {"sympy": version("sympy"), "reasoning-gym": version("reasoning-gym")}


def generate(out: Path, domains: list[str] | None = None) -> list[Path]:
    """Write every example domain's data under ``out``, then ``examples.manifest.json`` (the generator's
    versions and every file's SHA-256) when all domains were written; return the data files (sorted)."""
    names = domains or list(GENERATORS)
    for name in names:
        GENERATORS[name](out)
    files = sorted(p for name in names for p in (out / name).rglob("*") if p.is_file())
    if not domains:
        write_json(out / MANIFEST, {"generator": "scripts/make_example_data.py",
                                    "versions": generator_versions(),
                                    "files": {p.relative_to(out).as_posix(): _digest(p) for p in files}})
    return files


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check(out: Path) -> list[str]:
    """Files under ``out`` that differ from (or are missing in) a fresh run."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        files = generate(fresh) + [fresh / MANIFEST]
        problems = []
        for path in files:
            rel = path.relative_to(fresh)
            committed = out / rel
            if not committed.is_file():
                problems.append(f"missing: {rel}")
            elif not filecmp.cmp(path, committed, shallow=False):
                problems.append(f"differs: {rel} ({_digest(committed)[:12]} != fresh {_digest(path)[:12]})")
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where to write (default: domains/data)")
    parser.add_argument("--domain", action="append", choices=sorted(GENERATORS), help="only this domain")
    parser.add_argument("--check", action="store_true", help="compare the files under --out with a fresh run")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem)
        print("up to date" if not problems else f"{len(problems)} file(s) out of date: run "
                                                 "scripts/make_example_data.py")
        return 1 if problems else 0
    files = generate(args.out, args.domain)
    total = sum(p.stat().st_size for p in files)
    print(f"wrote {len(files)} files ({total / 1024:.0f} KiB) under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
