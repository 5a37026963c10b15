"""Policy files: thresholds per risk level plus permit/forbid rules with CEL conditions.

Loading is ``parse -> validate -> compile -> type-check``, and every problem of a file is reported at
once with ``file:line:column`` and the field (``SpecError``):

* unknown keys, wrong types, missing risk levels, duplicate rule ids, unknown actions;
* a condition (``when``) that does not compile as CEL, names a fact that does not exist (checked
  statically against ``graduation.policy.facts.FACT_SCHEMA``, with a did-you-mean), or fails on
  example facts of the declared types (CEL does not coerce, so ``domain.risk > 3`` is a type error),
  or does not yield a bool;
* a ``reason`` whose ``{placeholder}`` is not a fact.

Conditions are compiled once per policy (``cel.compile``) and never passed to Python's ``eval``.
The policy also records which facts its conditions use, so the engine hands CEL only those.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from graduation.errors import Problem, SpecError
from graduation.policy.conditions import (FORMATS, PLACEHOLDER, check_chain, check_condition, compile_cel,
                                          member_chains, type_check)
from graduation.spec import Risk, Strict, display_path, read_text, sha256_json, validate_located
from graduation.yamlsource import Located, load_yaml

ACTIONS: tuple[str, ...] = ("train:grpo", "train:sft", "deploy:sandbox", "deploy:shadow", "deploy:assisted",
                            "deploy:autonomous", "online:grpo")
Criterion = Literal["graduation", "verifiers", "data", "signoffs", "model"]
CRITERIA: tuple[str, ...] = get_args(Criterion)  # what a rule may name; each has its unmet items in policy.engine
RULE_ID = r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$"


class Thresholds(Strict):
    """The bar of one risk level."""

    min_wilson_lower: float = Field(ge=0, le=1, description="Wilson 95% lower bound of the verified pass rate.")
    min_samples: int = Field(ge=1, description="Distinct prompts per evaluation round (samples of one prompt are "
                                               "one unit).")
    stable_rounds: int = Field(ge=2, description="Consecutive rounds that must meet the bar; at least 2, so that the "
                                                 "first qualifying round makes candidate, never graduated.")
    max_shape_gap: float = Field(ge=0, le=1, description="Largest format-minus-substance pass-rate gap.")
    min_human_audit: int = Field(0, ge=0, description="Items a person must have checked (0: none).")
    min_human_held_rate: float = Field(0.95, ge=0, le=1, description="Fraction of checked items that must hold.")
    required_signoffs: int = Field(0, ge=0, description="Distinct people signing off assisted/autonomous use.")
    max_lineage_depth: int = Field(0, ge=0, description="Generations of model-written copies allowed in SFT data.")
    min_pass_k: float = Field(0.0, ge=0, le=1, description="pass^k consistency required (0: not required).")
    max_data_fail_rate: float = Field(0.0, ge=0, le=1, description="SFT rows allowed to fail substance checks.")
    min_coverage: float = Field(0.0, ge=0, le=1, description="Fraction of the registered eval prompts a round must "
                                                            "cover (distinct prompts evaluated / registered).")
    regression_alpha: float = Field(0.01, gt=0, lt=1, description="Significance of the regression test.")


class RuleSpec(Strict):
    """One permit or forbid rule."""

    id: str = Field(pattern=RULE_ID, description="Unique id, lowercase with dashes; named in every decision.")
    effect: Literal["permit", "forbid"]
    actions: list[str] = Field(min_length=1, description="Actions, or '*', 'train:*', 'deploy:*'.")
    when: str = Field("true", min_length=1, description="CEL condition over the facts; must yield a bool.")
    reason: str = Field(min_length=1, description="Why; {fact.path} placeholders are filled in "
                                                  "({fact.path|percent} shows a rate as a percentage).")
    criteria: list[Criterion] = Field(
        default_factory=list, description="Criteria whose unmet items explain a permit that did not apply.")
    description: str = ""


PRINCIPAL = r"^[a-z0-9][a-z0-9._+-]*(@[a-z0-9][a-z0-9.-]*)?$"


class Approvers(Strict):
    """Who may sign off, and how many distinct people of which role each action needs per risk level.

    Principals are the names of ``allowed_signers`` (OpenSSH format, namespace ``graduation``): lowercase
    ASCII (``alice@example.org``), so that a confusable or re-spelled name cannot pass for another person.
    """

    allowed_signers: str = Field("allowed_signers", description="The OpenSSH allowed_signers file, relative to "
                                                                "the policy file.")
    roles: dict[str, list[str]] = Field(default_factory=dict, description="role -> the principals who hold it.")
    require: dict[Risk, dict[str, dict[str, int]]] = Field(
        default_factory=dict, description="risk -> action -> {role: distinct principals needed}.")
    unsigned: list[Risk] = Field(default_factory=lambda: [Risk("low"), Risk("medium")],
                                 description="Risk levels where unsigned sign-offs and human audits count.")

    @model_validator(mode="after")
    def _check(self) -> "Approvers":
        skeletons: dict[str, str] = {}
        for role, people in self.roles.items():
            if not re.match(r"^[a-z0-9][a-z0-9-]{0,63}$", role):
                raise ValueError(f"approvers.roles: role {role!r} must be lowercase letters, digits and dashes")
            for person in people:
                if not re.match(PRINCIPAL, person):
                    raise ValueError(f"approvers.roles.{role}: principal {person!r} must be lowercase ASCII "
                                     "(e.g. alice@example.org), as in allowed_signers")
                skeleton = re.sub(r"[^a-z0-9@]", "", person)
                if skeletons.setdefault(skeleton, person) != person:
                    raise ValueError(f"approvers.roles: {person!r} and {skeletons[skeleton]!r} differ only in "
                                     "punctuation; one person, one principal")
        for risk, actions in self.require.items():
            for action, needs in actions.items():
                if action not in ACTIONS:
                    raise ValueError(f"approvers.require.{risk.value}: unknown action {action!r}")
                for role, count in needs.items():
                    if role not in self.roles:
                        raise ValueError(f"approvers.require.{risk.value}.{action}: role {role!r} is not in "
                                         "approvers.roles")
                    if count < 0 or count > len(self.roles[role]):
                        raise ValueError(f"approvers.require.{risk.value}.{action}.{role}: {count} is more than "
                                         f"the {len(self.roles[role])} principal(s) of the role")
        return self


class PolicyFile(Strict):
    """A policy file: ``policies/<name>.yaml``."""

    policy: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="The policy's name.")
    description: str = ""
    thresholds: dict[Risk, Thresholds]
    approvers: Approvers = Field(default_factory=Approvers)
    rules: list[RuleSpec] = Field(min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _complete(cls, thresholds: dict[Risk, Thresholds]) -> dict[Risk, Thresholds]:
        missing = [r.value for r in Risk if r not in thresholds]
        if missing:  # reported on the field, so that the error points at the thresholds block
            raise ValueError(f"missing risk level(s) {', '.join(missing)}; every level needs its bar")
        return thresholds


@dataclass(frozen=True)
class Rule:
    """A loaded rule: its spec, the expanded actions and the compiled condition."""

    id: str
    effect: str
    actions: tuple[str, ...]
    when: str
    reason: str
    criteria: tuple[str, ...]
    program: Any = field(repr=False, compare=False)
    placeholders: tuple[str, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Policy:
    """A validated, compiled policy. Build it with ``parse_policy`` or ``load_policy``."""

    name: str
    file: str
    digest: str
    thresholds: dict[str, Thresholds]
    rules: tuple[Rule, ...]
    uses: dict[str, frozenset[str] | None]  # fact root -> second-level keys used (None: all)
    description: str = ""
    warnings: tuple[str, ...] = ()  # e.g. a permit of deploy:autonomous that never looks at the risk
    threshold_facts: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    by_action: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    memo_size: int = 65536
    approvers: Any = None  # Approvers
    allowed_signers: str = ""  # the allowed_signers file's text ("" when there is none); covered by the digest
    allowed_signers_file: str = ""

    def rules_for(self, action: str) -> list[Rule]:
        return [r for r in self.rules if action in r.actions]


def _expand_actions(actions: list[str], located: Located, path: tuple) -> tuple[list[str], list[Problem]]:
    out: list[str] = []
    problems: list[Problem] = []
    for i, action in enumerate(actions):
        if action == "*":
            matched = list(ACTIONS)
        elif action.endswith(":*"):
            matched = [a for a in ACTIONS if a.startswith(action[:-1])]
        else:
            matched = [action] if action in ACTIONS else []
        if not matched:
            close = difflib.get_close_matches(action, ACTIONS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "actions: " + ", ".join(ACTIONS)
            problems.append(located.problem(path + (i,), f"unknown action {action!r}", hint))
        out.extend(a for a in matched if a not in out)
    return out, problems


def parse_policy(text: str, file: str, allowed_signers: str = "", allowed_signers_file: str = "", *,
                 located: Located | None = None) -> Policy:
    """Parse, validate, compile and type-check a policy file's text. Raises ``SpecError`` (all problems).

    ``located``: ``load_yaml(text, file)`` when the caller has already parsed it (it is not changed here).
    """
    located = load_yaml(text, file) if located is None else located
    if not isinstance(located.data, dict):
        raise SpecError([located.problem((), "a policy file must be a YAML mapping",
                                         "start from policies/default.yaml")])
    try:
        spec: PolicyFile = validate_located(PolicyFile, located, {})
    except SpecError as exc:
        # report the conditions' problems too, for every rule that is well-formed on its own
        problems = [_with_hint(p) for p in exc.problems]
        raw = located.data.get("rules")
        for index, item in enumerate(raw if isinstance(raw, list) else []):
            try:
                rs = RuleSpec.model_validate(item)
            except Exception:  # noqa: BLE001 - its schema problems are already reported
                continue
            problems.extend(_check_rules([(index, rs)], located)[1])
        raise SpecError(problems) from None
    rules, problems, uses = _check_rules(list(enumerate(spec.rules)), located)
    if problems:
        raise SpecError(problems)
    canonical = spec.model_dump(mode="json")
    if allowed_signers:
        canonical = {**canonical, "allowed_signers_text": allowed_signers}
    return Policy(
        name=spec.policy, file=file, digest=sha256_json(canonical),
        approvers=spec.approvers, allowed_signers=allowed_signers, allowed_signers_file=allowed_signers_file,
        thresholds={risk.value: t for risk, t in spec.thresholds.items()}, rules=tuple(rules),
        uses={k: (None if v is None else frozenset(v)) for k, v in uses.items()},
        description=spec.description, warnings=tuple(_risk_guard_warnings(rules, located)),
        threshold_facts={risk.value: t.model_dump() for risk, t in spec.thresholds.items()},
        by_action={a: tuple(i for i, r in enumerate(rules) if a in r.actions) for a in ACTIONS},
    )


GUARDED_ACTIONS = ("deploy:autonomous", "online:grpo")
RISK_FACTS = ("domain.risk", "domain.risk_rank")


def _risk_guard_warnings(rules: list[Rule], located: Located) -> list[str]:
    """A permit of deploy:autonomous or online:grpo whose condition never looks at the domain's risk."""
    out = []
    for i, rule in enumerate(rules):
        guarded = [a for a in rule.actions if a in GUARDED_ACTIONS]
        if rule.effect != "permit" or not guarded:
            continue
        chains, _bound = member_chains(rule.when)
        if any(".".join(c[:2]) in RISK_FACTS or c == ["domain"] for c in chains):
            continue
        pos = located.position(("rules", i, "when"))
        where = f"{located.file}:{pos[0]}" if pos else located.file
        out.append(f"{where}: rule {rule.id!r} permits {', '.join(guarded)} without a risk guard: its condition "
                   "never reads domain.risk or domain.risk_rank, so it permits critical domains too")
    return out


def _check_rules(specs: list[tuple[int, RuleSpec]], located: Located):
    """Compile and check rules: (rules, problems, facts used)."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    uses: dict[str, set[str] | None] = {}
    seen: dict[str, int] = {}
    for index, rs in specs:
        base = ("rules", index)
        if rs.id in seen:
            problems.append(located.problem(base + ("id",), f"rule id {rs.id!r} is used twice (also rules[{seen[rs.id]}])",
                                            "give every rule a unique id"))
        seen.setdefault(rs.id, index)
        actions, action_problems = _expand_actions(rs.actions, located, base + ("actions",))
        problems.extend(action_problems)
        errors, rule_uses = check_condition(rs.when)
        program = None
        if not errors:
            try:
                program = compile_cel(rs.when)
            except Exception as exc:  # noqa: BLE001 - parse errors come as ValueError/RuntimeError
                errors.append("CEL syntax error: " + " ".join(str(exc).split()))
        if program is not None and not errors:
            type_error = type_check(program)
            if type_error:
                errors.append(f"CEL type error: {type_error}")
        for error in errors:
            problems.append(located.problem(base + ("when",), f"rule {rs.id!r}: {error}",
                                            "conditions use the facts listed by `registry policy facts`"))
        placeholders = tuple(PLACEHOLDER.findall(rs.reason))
        for ph in placeholders:
            path, _, fmt = ph.partition("|")
            error, _ = check_chain(path.split("."), {})
            if not error and fmt and fmt not in FORMATS:
                error = f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})"
            if error:
                problems.append(located.problem(base + ("reason",), f"rule {rs.id!r}: reason placeholder {{{ph}}}: "
                                                f"{error}", "placeholders name facts, e.g. {data.symbols}"))
        for root, keys in rule_uses.items():
            if keys is None or uses.get(root, set()) is None:
                uses[root] = None
            else:
                uses.setdefault(root, set()).update(keys)
        pos = located.position(base)
        rules.append(Rule(rs.id, rs.effect, tuple(actions), rs.when, rs.reason, tuple(rs.criteria), program,
                          placeholders, pos[0] if pos else None))
    return rules, problems, uses


def _with_hint(problem: Problem) -> Problem:
    """Add a did-you-mean to an unknown key inside thresholds or rules (pydantic cannot see through dicts)."""
    if problem.hint or not problem.message.startswith("unknown key") or not problem.field:
        return problem
    key = problem.message.split("'")[1]
    if problem.field.startswith("thresholds."):
        known = list(Thresholds.model_fields)
    elif problem.field.startswith("rules["):
        known = list(RuleSpec.model_fields)
    else:
        known = list(PolicyFile.model_fields)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(known)
    return Problem(problem.message, problem.file, problem.line, problem.column, problem.field, hint)


# -- files --------------------------------------------------------------------------------------------

PACKAGED = "default.yaml"


def packaged_policy_path() -> Path:
    """The default policy shipped inside the package."""
    return Path(__file__).resolve().parent / PACKAGED


def default_policy_path(project_root: Path | None) -> Path:
    """``<project>/policies/default.yaml`` if present, else the packaged default."""
    if project_root is not None:
        candidate = Path(project_root) / "policies" / "default.yaml"
        if candidate.is_file():
            return candidate
    return packaged_policy_path()


def load_policy(path: Path | str | None = None, project_root: Path | None = None) -> Policy:
    """Read and parse a policy file (the project's default when ``path`` is None)."""
    path = Path(path) if path is not None else default_policy_path(project_root)

    shown = display_path(path, Path(project_root)) if project_root is not None else str(path)
    text = read_text(path)
    try:
        located = load_yaml(text, shown)  # parsed once: for the allowed_signers name, then the policy itself
    except SpecError:
        located = None  # parse_policy reports it
    name = _signers_name(located.data if located is not None else None)
    signers_path = path.parent / name
    if not signers_path.is_file() and project_root is not None:  # the packaged policy: the project's own list
        signers_path = Path(project_root) / "policies" / name
    signers = read_text(signers_path) if signers_path.is_file() else ""  # not UTF-8: a located error, exit 2
    return parse_policy(text, shown, signers, str(signers_path), located=located)


def _allowed_signers_name(text: str) -> str:
    """The allowed_signers file a policy names (before it is validated; the default when it names none)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except Exception:  # noqa: BLE001 - parse_policy reports a broken file properly
        return "allowed_signers"
    return _signers_name(data)


def _signers_name(data: Any) -> str:
    """``_allowed_signers_name`` of a parsed policy document."""
    try:
        name = data["approvers"]["allowed_signers"]
    except Exception:  # noqa: BLE001 - parse_policy reports a broken file properly
        return "allowed_signers"
    return name if isinstance(name, str) and name and ".." not in Path(name).parts else "allowed_signers"


__all__ = ["ACTIONS", "Approvers", "CRITERIA", "Policy", "PolicyFile", "Rule", "RuleSpec", "Thresholds", "check_condition",
           "default_policy_path", "load_policy", "packaged_policy_path", "parse_policy"]
