"""CEL conditions are compiled and evaluated each on its own: a comment or string in one rule cannot reach
another, and a condition that does not parse is a located policy error (exit 2), never a traceback."""

from __future__ import annotations

import pytest

from graduation.errors import SpecError
from graduation.policy import decide
from graduation.policy.engine import evaluate_rules
from graduation.policy.model import check_condition, packaged_policy_path, parse_policy
from graduation.spec import DomainSpec

DEFAULT = packaged_policy_path().read_text()
CRITICAL = DomainSpec.model_validate({
    "domain": "tempe", "title": "t", "risk": "critical", "owners": ["a@example.org"],
    "ground_truth": [{"name": "ref", "path": "data/x.jsonl", "provenance": "expert"}],
    "verifiers": [{"name": "answer", "kind": "exact", "role": "substance"}]})


def with_rule_when(rule_id: str, when: str) -> str:
    """The default policy with one rule's condition replaced by a YAML block scalar."""
    lines = DEFAULT.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- id: {rule_id}")
    at = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("when:"))
    indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
    block = [f"{indent}when: |"] + [f"{indent}  {part}" for part in when.splitlines()]
    return "\n".join(lines[:at] + block + lines[at + 1:]) + "\n"


def test_comment_and_triple_quoted_string_do_not_cross_rules():
    """The measured leak: a `//` comment plus a ''' string in one rule turned a permit true and a forbid false."""
    text = with_rule_when("autonomous-when-graduated-and-signed",
                          "phase == \"graduated\" && domain.risk_rank <= 2 // '''")
    text = with_rule_when("critical-never-autonomous", "domain.risk == \"critical\" // ''' || true")
    policy = parse_policy(text, "p.yaml")
    d = decide(CRITICAL, [], policy)
    assert d.phase == "discovery"
    assert not d.allowed("deploy:autonomous")
    assert d.actions["deploy:autonomous"].effect == "forbid"
    # every rule's result is what it gives evaluated alone
    results = evaluate_rules(policy, d.facts)
    for rule, (matched, err) in zip(policy.rules, results):
        assert err is None
        assert matched is rule.program.execute(d.facts)


def test_a_comment_hiding_a_use_from_the_static_check_is_still_seen():
    """A ''' in a comment must not make the name check (and the memo key) skip the code after it."""
    errors, uses = check_condition("true // '''\n&& phase == \"graduated\" // '''")
    assert not errors and "phase" in uses
    errors, _ = check_condition("true // it's fine\n&& phse == \"graduated\"")
    assert errors and "phse" in errors[0]


def test_trailing_comment_loads_and_decides():
    """A plain trailing `// --` crashed `policy validate` and `status` with a traceback."""
    text = with_rule_when("critical-never-autonomous", 'domain.risk == "critical" // --')
    policy = parse_policy(text, "p.yaml")
    assert not decide(CRITICAL, [], policy).allowed("deploy:autonomous")


def test_no_joined_program_exists():
    policy = parse_policy(DEFAULT, "p.yaml")
    assert not hasattr(policy, "combined")


def test_parse_error_is_located():
    text = with_rule_when("critical-never-autonomous", 'domain.risk == "critical" &&')
    with pytest.raises(SpecError) as info:
        parse_policy(text, "p.yaml")
    [p] = info.value.problems
    assert p.file == "p.yaml" and p.line is not None and "critical-never-autonomous" in p.message


def test_cli_trailing_comment_and_parse_error(cli, project):
    path = project / "policies" / "default.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(with_rule_when("critical-never-autonomous", 'domain.risk == "critical" // --'))
    result = cli("policy", "validate")
    assert result.exit_code == 0, result.output
    path.write_text(with_rule_when("critical-never-autonomous", 'domain.risk == "critical" || ('))
    result = cli("policy", "validate")
    assert result.exit_code == 2 and "policies/default.yaml:" in result.output and "Traceback" not in result.output


def test_validate_warns_on_unguarded_autonomous_permit(cli, project):
    path = project / "policies" / "default.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(DEFAULT)
    assert parse_policy(DEFAULT, "p.yaml").warnings == ()
    text = with_rule_when("autonomous-when-graduated-and-signed", 'phase == "graduated"')
    policy = parse_policy(text, "p.yaml")
    assert len(policy.warnings) == 1 and "autonomous-when-graduated-and-signed" in policy.warnings[0]
    path.write_text(text)
    result = cli("policy", "validate")
    assert result.exit_code == 0 and "without a risk guard" in result.output
