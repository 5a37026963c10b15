"""Verifier validation: a verifier must accept its references and reject its controls.

Controls are (1) the domain's declared known-wrong outputs (``controls:`` JSONL, field ``output`` next to the
row's reference) and (2) mutations generated from each reference: a perturbed number, a dropped term, a
swapped sign, an injected extra symbol. A verifier that lets a declared control through, or more than
``max_mutation_leak`` of the mutations, is untrustworthy, and the record names the controls it accepted.
A verifier with no references or no controls is untrustworthy too: nothing shows it can tell right from wrong.

A *substance* verifier must also reject at least ``MIN_MEANINGFUL_CONTROLS`` meaningful controls: declared
known-wrong outputs or generated mutations. The empty output, which every verifier is given, does not count
(``(?s).+`` rejects it and nothing else). With fewer, the verifier is ``unvalidated`` (not trustworthy), and the
reason says what to add: a ``controls:`` file of known-wrong outputs, or ``mutations: true``.

Mutations are for *substance* verifiers (a perturbed number is still well-formed, so a format check is right
to accept it); a format verifier is held to its declared controls and to the empty output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graduation.records import VerifierCheck, VerifierValidationRecord
from graduation.verifiers.base import Verifier, reference_text

MAX_LEAKS_LISTED = 10
MIN_MEANINGFUL_CONTROLS = 3
INJECTED = "q"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TERM_SPLIT = re.compile(r"\s+[+-]\s+")
_MATHLIKE = re.compile(r"^[A-Za-z0-9\s.+\-*/^()\\{}\[\],=<>|_!']{1,200}$")


@dataclass(frozen=True)
class Control:
    """An output the verifier must reject, with the reference it is judged against and where it came from."""

    output: str
    reference: Any
    row: Mapping[str, Any] | None
    origin: str  # "controls.jsonl:3" or "mutation:perturbed_number"

    @property
    def declared(self) -> bool:
        return not self.origin.startswith("mutation:")


def mutations(reference: Any) -> list[tuple[str, str]]:
    """(name, mutated output) pairs that differ from the reference; each should be judged wrong."""
    text = reference_text(reference).strip()
    if not text:
        return []
    wrap = "$" not in text and bool(_MATHLIKE.match(text)) and any(c.isdigit() for c in text)
    found: list[tuple[str, str]] = []

    numbers = list(_NUMBER.finditer(text))
    if numbers:
        last = numbers[-1]
        value = last.group(0)
        if "." in value:
            new = f"{float(value) * 1.5 + 1:.{len(value.split('.')[1])}f}"
        else:
            new = str(int(value) + 1)
        found.append(("perturbed_number", text[:last.start()] + new + text[last.end():]))

    terms = _TERM_SPLIT.split(text)
    if len(terms) > 1:
        cut = list(_TERM_SPLIT.finditer(text))[-1]
        found.append(("dropped_term", text[:cut.start()]))
    elif "," in text:
        found.append(("dropped_term", text.rsplit(",", 1)[0]))
    elif len(text.split()) > 1:
        found.append(("dropped_term", text.rsplit(None, 1)[0]))

    all_zero = numbers and all(float(m.group(0)) == 0 for m in numbers)
    if "+" in text:
        found.append(("swapped_sign", text.replace("+", "-", 1)))
    elif "-" in text and not all_zero:
        found.append(("swapped_sign", text.replace("-", "+", 1) if not text.startswith("-") else text[1:]))
    elif numbers and not all_zero:
        first = numbers[0]
        found.append(("swapped_sign", text[:first.start()] + "-" + text[first.start():]))

    found.append(("injected_symbol", f"{text} + {INJECTED}" if wrap else f"{text} {INJECTED}_extra"))

    out = []
    for name, mutated in found:
        if wrap:
            mutated = f"${mutated}$"
        if mutated.strip() and mutated.strip("$ ") != text:
            out.append((name, mutated))
    return out


def controls_for(verifier_role: str, references: Sequence[tuple[Any, Mapping[str, Any] | None]],
                 declared: Sequence[Control], use_mutations: Any) -> list[Control]:
    """Every control of one verifier: declared ones, the empty output, and (substance) reference mutations.

    ``use_mutations``: true, false, or options whose ``exclude`` names families not to generate.
    """
    out = list(declared)
    if references:
        ref, row = references[0]
        out.append(Control("", ref, row, "mutation:empty_output"))
    excluded = set(getattr(use_mutations, "exclude", None) or ())
    if use_mutations and verifier_role == "substance":
        for ref, row in references:
            for name, mutated in mutations(ref):
                if name not in excluded:
                    out.append(Control(mutated, ref, row, f"mutation:{name}"))
    return out


def _row_label(row: Mapping[str, Any] | None, row_id: Any) -> str:
    if row is None:
        return "?"
    if row_id is not None:
        found = row_id(row)
        if found is not None:
            return str(found)[:40]
    for key in ("id", "prompt", "question"):
        if row.get(key) is not None:
            return str(row[key])[:40]
    return "?"


def leak_summary(leaked: Sequence[Control], generated: Sequence[Control], row_id: Any = None) -> str:
    """Which families leaked, on which rows, and what to do about it."""
    by_family: dict[str, list[Control]] = {}
    for c in leaked:
        by_family.setdefault(c.origin.split(":", 1)[1], []).append(c)
    totals: dict[str, int] = {}
    for c in generated:
        family = c.origin.split(":", 1)[1]
        totals[family] = totals.get(family, 0) + 1
    parts = []
    for family, found in sorted(by_family.items()):
        rows = list(dict.fromkeys(_row_label(c.row, row_id) for c in found))
        shown = ", ".join(rows[:4]) + (f" and {len(rows) - 4} more" if len(rows) > 4 else "")
        parts.append(f"{family} on {len(found)} of {totals.get(family, len(found))} (rows {shown})")
    families = sorted(f for f in by_family if f != "empty_output")
    advice = ("if these are equivalent forms of the right answer, the verifier is right to accept them: "
              "exclude the family with `mutations: {exclude: [" + ", ".join(families) + "]}`; otherwise "
              "tighten the verifier (e.g. a numeric verifier with last_number_fallback: false) or declare "
              "known-wrong outputs in a controls file") if families else "the verifier accepts an empty output"
    return f"accepts {len(leaked)} of {len(generated)} generated wrong answers: {'; '.join(parts)}. {advice}"


def leaked_list(leaked: Sequence[Control], row_id: Any = None) -> list[str]:
    """Leaked controls by row, each distinct output once (at most ``MAX_LEAKS_LISTED``)."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for c in leaked:
        key = (c.origin, c.output)
        if key in seen:
            continue
        seen.add(key)
        where = c.origin if c.declared else f"{c.origin} (row {_row_label(c.row, row_id)})"
        out.append(f"{where}: {c.output[:80]!r}")
        if len(out) >= MAX_LEAKS_LISTED:
            break
    return out


def validate(verifiers: Sequence[Verifier], references: Sequence[tuple[Any, Mapping[str, Any] | None]],
             declared: Mapping[str, Sequence[Control]], run: Any, *,
             mutations_for: Mapping[str, bool] | None = None, min_reference_acceptance: float = 0.98,
             max_mutation_leak: float = 0.05, notes: Sequence[str] = (), row_id: Any = None
             ) -> VerifierValidationRecord:
    """Check each verifier on references and controls. ``run(jobs) -> verdicts`` runs (verifier, item) pairs
    (``VerifierPool.verify_many``), so that untrusted checks stay isolated."""
    checks = []
    for verifier in verifiers:
        controls = controls_for(verifier.role, references, declared.get(verifier.name, ()),
                                (mutations_for or {}).get(verifier.name, True))
        jobs = [(verifier, (reference_text(ref), ref, row)) for ref, row in references]
        jobs += [(verifier, (c.output, c.reference, c.row)) for c in controls]
        verdicts = run(jobs) if jobs else []
        ref_verdicts = verdicts[:len(references)]
        control_verdicts = verdicts[len(references):]
        accepted = sum(v.verdict == "pass" for v in ref_verdicts)
        leaked = [c for c, v in zip(controls, control_verdicts) if v.verdict == "pass"]
        declared_leaks = [c for c in leaked if c.declared]
        generated = [c for c in controls if not c.declared]
        generated_leaks = [c for c in leaked if not c.declared]
        reasons = list(notes)
        if not references:
            reasons.append("no references to check against: it cannot be shown to accept right answers")
        elif accepted / len(references) < min_reference_acceptance:
            rejected = [v for v in ref_verdicts if v.verdict != "pass"]
            example = rejected[0].explanation if rejected else None
            reasons.append(f"accepts only {accepted} of {len(references)} references "
                           f"(needs {min_reference_acceptance:.0%})" + (f"; e.g. {example}" if example else ""))
        if not controls:
            reasons.append("no controls: nothing shows it can reject a wrong answer")
        if declared_leaks:
            reasons.append(f"accepts {len(declared_leaks)} of its {sum(c.declared for c in controls)} declared "
                           "known-wrong outputs")
        if generated and len(generated_leaks) / len(generated) > max_mutation_leak:
            reasons.append(leak_summary(generated_leaks, generated, row_id))
        failed = bool([r for r in reasons if r not in notes])
        meaningful = [c for c in controls if c.origin != "mutation:empty_output"]
        meaningful_rejected = len(meaningful) - sum(1 for c in leaked if c.origin != "mutation:empty_output")
        unvalidated = False
        if verifier.role == "substance" and meaningful_rejected < MIN_MEANINGFUL_CONTROLS:
            unvalidated = not failed
            reasons.append(("unvalidated" if unvalidated else "too few controls") + f": rejected {meaningful_rejected} meaningful wrong answer(s), "
                           f"{MIN_MEANINGFUL_CONTROLS} needed (the empty output does not count); add a controls: "
                           "file of known-wrong outputs" + ("" if (mutations_for or {}).get(verifier.name, True)
                                                            else " or set mutations: true"))
        trustworthy = bool(references) and bool(controls) and not failed and not unvalidated
        status = "trustworthy" if trustworthy else "unvalidated" if unvalidated else "untrustworthy"
        checks.append(VerifierCheck(
            name=verifier.name, role=verifier.role, kind=verifier.kind, version=verifier.version,
            references=len(references), references_accepted=accepted, controls=len(controls),
            controls_rejected=len(controls) - len(leaked), trustworthy=trustworthy,
            leaked_controls=leaked_list(leaked, row_id),
            reasons=reasons, status=status, meaningful_rejected=max(0, meaningful_rejected)))
    return VerifierValidationRecord(verifiers=checks)
