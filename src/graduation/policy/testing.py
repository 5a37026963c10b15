"""Policy unit tests, like ``opa test``: fixtures of a domain plus evidence, and the decision expected.

A test file (``policies/tests/*.yaml``) holds ``cases``; each names a domain (inline, as in a domain
file), its evidence (records of ``graduation.records``; eval rounds may give just ``n`` and ``passed``
and the rates are filled in), and what to expect::

    cases:
      - name: 7/8 on a high-risk domain is not graduated
        domain: {domain: demo, title: Demo, risk: high, owners: [me], verifiers: [...]}
        evidence:
          - {kind: eval, n: 8, passed: 7}
        expect:
          phase: discovery
          allow: [train:grpo]
          deny: [train:sft, deploy:shadow]
          rules: {train:sft: [sft-only-after-graduation]}     # rules that decided (empty list: default deny)
          mention: {train:sft: ["0.53 < 0.95"]}               # text found in reasons/unmet of the action
          recommendation: discovery                            # text found in the recommendation

``run_cases`` returns each case's failures and the rules no case exercised (matched).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import Field

from graduation.errors import Problem, SpecError
from graduation.policy.engine import Decision, decide, evaluate_rules
from graduation.policy.model import ACTIONS, Policy
from graduation.policy.phase import wilson_lower
from graduation.records import Evidence
from graduation.records import RECORD_MODELS
from graduation.spec import DomainSpec, Strict, read_text, sha256_json, validate_located
from graduation.yamlsource import load_yaml

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def complete_eval(fields: dict[str, Any]) -> dict[str, Any]:
    """Fill the rates of an eval/training_round record from ``n`` and ``passed`` (and slices likewise).

    Unless given, ``prompts`` is ``n`` (one sample per prompt) and the round covers every registered eval prompt.
    """
    out = dict(fields)
    n, passed = int(out["n"]), int(out["passed"])
    rate = passed / n if n else 0.0
    out.setdefault("model", "model@1")
    # a fixture names items; unless it says otherwise, each is one prompt and the round covers every
    # registered eval prompt
    out.setdefault("prompts", n)
    out.setdefault("eval_prompts", out["prompts"])
    out.setdefault("coverage", min(1.0, out["prompts"] / out["eval_prompts"]) if out["eval_prompts"] else 0.0)
    out.setdefault("pass_rate", rate)
    out.setdefault("wilson_lower", wilson_lower(passed, n))
    out.setdefault("substance_pass_rate", rate)
    out.setdefault("format_pass_rate", out["substance_pass_rate"])
    out.setdefault("shape_gap", out["format_pass_rate"] - out["substance_pass_rate"])
    slices = []
    for s in out.get("slices", []):
        s = dict(s)
        sn, sp = int(s["n"]), int(s["passed"])
        srate = sp / sn if sn else 0.0
        s.setdefault("pass_rate", srate)
        s.setdefault("wilson_lower", wilson_lower(sp, sn))
        s.setdefault("substance_pass_rate", srate)
        s.setdefault("format_pass_rate", srate)
        slices.append(s)
    if slices:
        out["slices"] = slices
    return out


def make_evidence(domain: str, kind: str, summary: dict[str, Any], index: int, *, author: str | None = None,
                  basis_hash: str = "fixture", model: str | None = None) -> Evidence:
    """An ``Evidence`` value as the store would hand it back (for fixtures, tests and benchmarks)."""
    record_model = RECORD_MODELS.get(kind)
    if record_model is None:
        raise ValueError(f"unknown evidence kind {kind!r}; use one of {', '.join(RECORD_MODELS)}")
    if kind in ("eval", "training_round"):
        summary = complete_eval(summary)
    record = record_model.model_validate(summary)
    digest = hashlib.sha256(json.dumps([domain, kind, index, record.model_dump(mode="json")], sort_keys=True)
                            .encode()).hexdigest()
    return Evidence(uid=digest[:32], domain=domain, domain_version=1, basis_hash=basis_hash, kind=kind, record=record,
                    created_at=EPOCH + timedelta(minutes=index), round=summary.get("round"), author=author,
                    record_hash=digest, model_key=model if model is not None else
                    (record.model if kind in ("eval", "training_round") else None))


class Expect(Strict):
    phase: str | None = None
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    rules: dict[str, list[str]] = Field(default_factory=dict)
    mention: dict[str, list[str]] = Field(default_factory=dict)
    recommendation: str | None = None


class EvidenceItem(Strict):
    model_config = {**Strict.model_config, "extra": "allow"}
    kind: str


class ModelCase(Strict):
    """The registered model a case decides deployment for (omit it to decide for the domain alone)."""

    ref: str = Field(min_length=1, description="NAME@V; eval records name it in `model` (default model@1).")
    digest: str | None = Field(None, description="sha256:HEX (default: derived from ref).")
    digest_kind: str = "manifest"
    refused_data: bool = Field(False, description="Its lineage says it was trained on data the registry refused.")

    def facts(self) -> dict[str, Any]:
        name, _, version = self.ref.partition("@")
        digest = self.digest or "sha256:" + hashlib.sha256(self.ref.encode()).hexdigest()
        return {"ref": self.ref, "name": name, "version": int(version) if version.isdigit() else 0,
                "digest": digest if self.digest_kind != "unverified" else "", "digest_kind": self.digest_kind,
                "refused_data": self.refused_data}


class CaseSpec(Strict):
    name: str = Field(min_length=1)
    domain: dict[str, Any]
    model: ModelCase | None = None
    evidence: list[EvidenceItem] = Field(default_factory=list)
    expect: Expect


class CaseFile(Strict):
    cases: list[CaseSpec] = Field(min_length=1)


@dataclass
class Case:
    name: str
    file: str
    line: int | None
    spec: DomainSpec
    evidence: list[Evidence]
    expect: Expect
    model: dict[str, Any] | None = None


@dataclass
class CaseResult:
    case: Case
    decision: Decision
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class TestReport:
    results: list[CaseResult]
    rules: list[str]
    exercised: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def unexercised(self) -> list[str]:
        return [r for r in self.rules if r not in self.exercised]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "cases": [{"name": r.case.name, "file": r.case.file, "line": r.case.line, "ok": r.ok,
                                          "failures": r.failures} for r in self.results],
                "coverage": {"rules": len(self.rules), "exercised": len(self.rules) - len(self.unexercised),
                             "unexercised": self.unexercised}}


def parse_cases(text: str, file: str) -> list[Case]:
    """Parse a test file; every problem (schema, domain, evidence record, unknown action) is located."""
    located = load_yaml(text, file)
    spec: CaseFile = validate_located(CaseFile, located, {})
    cases: list[Case] = []
    problems: list[Problem] = []
    for ci, cs in enumerate(spec.cases):
        base = ("cases", ci)
        try:
            domain = DomainSpec.model_validate(cs.domain)
        except Exception as exc:  # noqa: BLE001 - pydantic ValidationError, reported with the case's position
            problems.append(located.problem(base + ("domain",), f"case {cs.name!r}: invalid domain: "
                                            + " ".join(str(exc).split())[:300]))
            continue
        evidence = []
        model_facts = cs.model.facts() if cs.model is not None else None
        for ei, item in enumerate(cs.evidence):
            data = item.model_dump()
            kind = data.pop("kind")
            author = data.pop("author", None)
            owner = data.get("model") if kind in ("signoff", "eval", "training_round") else data.pop("model", None)
            if kind == "signoff" and owner:
                # a sign-off in a case binds the case's domain version and model unless it says otherwise

                data.setdefault("domain_digest", sha256_json(domain.canonical()))
                if model_facts is not None and owner == model_facts["ref"]:
                    data.setdefault("model_digest", model_facts["digest"] or None)
            try:
                evidence.append(make_evidence(domain.domain, kind, data, ei, author=author, model=owner))
            except Exception as exc:  # noqa: BLE001 - ValueError / ValidationError
                problems.append(located.problem(base + ("evidence", ei), f"case {cs.name!r}: invalid {kind} record: "
                                                + " ".join(str(exc).split())[:300]))
        for key in ("allow", "deny"):
            for ai, action in enumerate(getattr(cs.expect, key)):
                if action not in ACTIONS:
                    problems.append(located.problem(base + ("expect", key, ai), f"unknown action {action!r}",
                                                    "actions: " + ", ".join(ACTIONS)))
        for key in ("rules", "mention"):
            for action in getattr(cs.expect, key):
                if action not in ACTIONS:
                    problems.append(located.problem(base + ("expect", key, action), f"unknown action {action!r}"))
        pos = located.position(base)
        cases.append(Case(cs.name, file, pos[0] if pos else None, domain, evidence, cs.expect, model_facts))
    if problems:
        raise SpecError(problems)
    return cases


def load_cases(paths: list[Path]) -> list[Case]:
    """Cases of every ``*.yaml`` file under the given files/directories (all problems reported at once)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise SpecError([Problem("no such file or directory", str(path))])
    if not files:
        raise SpecError([Problem("no policy test files (*.yaml) found", ", ".join(map(str, paths)))])
    cases: list[Case] = []
    problems: list[Problem] = []
    for file in files:
        try:
            cases.extend(parse_cases(read_text(file), str(file)))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return cases


def check_case(case: Case, decision: Decision) -> list[str]:
    e = case.expect
    failures: list[str] = []
    if e.phase is not None and decision.phase != e.phase:
        failures.append(f"phase: expected {e.phase}, got {decision.phase} ({'; '.join(decision.unmet[:3])})")
    for action in e.allow:
        if not decision.allowed(action):
            d = decision.actions[action]
            failures.append(f"{action}: expected allowed, got denied ({'; '.join(d.reasons + d.unmet + d.errors)[:300]})")
    for action in e.deny:
        if decision.allowed(action):
            failures.append(f"{action}: expected denied, got allowed by {', '.join(decision.actions[action].rules)}")
    for action, rules in e.rules.items():
        got = list(decision.actions[action].rules)
        if sorted(got) != sorted(rules):
            failures.append(f"{action}: expected deciding rules {rules}, got {got}")
    for action, needles in e.mention.items():
        d = decision.actions[action]
        text = "\n".join(d.reasons + d.unmet + d.errors)
        for needle in needles:
            if needle not in text:
                failures.append(f"{action}: expected the explanation to mention {needle!r}; it says: {text[:400]!r}")
    if e.recommendation is not None and e.recommendation not in decision.recommendation:
        failures.append(f"recommendation: expected to contain {e.recommendation!r}, got {decision.recommendation!r}")
    return failures


def run_cases(cases: list[Case], policy: Policy) -> TestReport:
    report = TestReport([], [r.id for r in policy.rules])
    for case in cases:
        decision = decide(case.spec, case.evidence, policy, model=case.model)
        for rule, (matched, _err) in zip(policy.rules, evaluate_rules(policy, decision.facts)):
            if matched:
                report.exercised.add(rule.id)
        report.results.append(CaseResult(case, decision, check_case(case, decision)))
    return report


__all__ = ["Case", "CaseResult", "TestReport", "check_case", "complete_eval", "load_cases", "make_evidence",
           "parse_cases", "run_cases"]
