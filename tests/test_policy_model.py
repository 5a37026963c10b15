"""Policy files: every load problem is located (file:line) and named; the shipped default is consistent."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from graduation.errors import SpecError
from graduation.policy.model import check_condition, packaged_policy_path, parse_policy

REPO = Path(__file__).resolve().parent.parent
DEFAULT = packaged_policy_path().read_text()


def problems(text: str) -> list:
    with pytest.raises(SpecError) as info:
        parse_policy(text, "p.yaml")
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_shipped_default_policy_loads_and_matches_the_project_copy():
    assert (REPO / "policies" / "default.yaml").read_text() == DEFAULT
    packaged = resources.files("graduation.policy").joinpath("default.yaml").read_text("utf-8")
    assert packaged == DEFAULT
    policy = parse_policy(DEFAULT, "default.yaml")
    assert policy.name == "default" and len(policy.rules) >= 10
    assert set(policy.thresholds) == {"low", "medium", "high", "critical"}


def test_unknown_field_is_located():
    text = DEFAULT.replace("    max_data_fail_rate: 0.02\n", "    max_data_fail_rate: 0.02\n    min_wilson: 0.5\n", 1)
    [p] = problems(text)
    assert "unknown key 'min_wilson'" in p.message
    assert p.line == line_of(text, "min_wilson:") and p.field == "thresholds.low.min_wilson"
    assert "did you mean 'min_wilson_lower'" in p.hint


def test_unknown_fact_in_condition_is_located_with_did_you_mean():
    text = DEFAULT.replace("when: verifiers.substance_validated\n", "when: verifiers.substance_valid\n")
    [p] = problems(text)
    assert p.line == line_of(text, "when: verifiers.substance_valid")
    assert "verifiers.substance_valid" in p.message and "did you mean 'verifiers.substance_validated'" in p.message
    assert p.field == "rules[0].when"


@pytest.mark.parametrize("condition, needle", [
    ("domain.risk > 3", "type error"),
    ("eval.n + 1", "not a bool"),
    ("phase ==", "syntax error"),
    ("nonsense.field", "unknown name 'nonsense'"),
    ("domain.risk.length", "is a string and has no field"),
    ("data.symbols.exists(s, s.rat > 0.1)", "unknown fact 's.rat'"),
    ("data.symbols.exists(s, s.rate > 0.1) && eval.wilsn_lower > 0.5", "eval.wilson_lower"),
])
def test_bad_conditions_are_load_errors(condition, needle):
    text = DEFAULT.replace('when: "true"', f"when: '{condition}'")
    found = problems(text)
    assert any(needle in p.message for p in found), [p.message for p in found]
    assert all(p.file == "p.yaml" and p.line for p in found)


def test_every_problem_is_reported_at_once():
    text = DEFAULT.replace("actions: [train:grpo]\n", "actions: [train:grop]\n", 1) \
        .replace("id: sandbox-always", "id: shadow-after-discovery") \
        .replace("reason: \"a sandbox touches no one", "reason: \"{eval.nope} a sandbox touches no one")
    found = problems(text)
    messages = "\n".join(p.message for p in found)
    assert "unknown action 'train:grop'" in messages
    assert "used twice" in messages
    assert "reason placeholder {eval.nope}" in messages
    assert any(p.hint == "did you mean 'train:grpo'?" for p in found)


def test_missing_risk_level_and_wrong_type():
    text = DEFAULT.replace("  critical:\n    min_wilson_lower: 0.97", "  extreme:\n    min_wilson_lower: 0.97")
    assert any("extreme" in p.message for p in problems(text))
    text = DEFAULT.replace("min_samples: 200", "min_samples: lots")
    [p] = problems(text)
    assert p.field == "thresholds.high.min_samples" and p.line == line_of(text, "min_samples: lots")


def test_not_a_mapping_and_yaml_syntax():
    assert problems("- a\n- b\n")[0].message.startswith("a policy file must be a YAML mapping")
    assert "YAML syntax error" in problems("policy: [\n")[0].message


def test_static_analysis_records_only_the_facts_used():
    errors, uses = check_condition('phase == "graduated" && data.symbols.exists(s, s.rate > 0.1) && size(eval.symbols) > 0')
    assert not errors
    assert uses == {"phase": None, "data": {"symbols"}, "eval": {"symbols"}}
    errors, _ = check_condition('"eval.bogus" == phase')  # names inside strings are not facts
    assert errors == []


def test_policy_digest_ignores_formatting_but_not_content():
    a = parse_policy(DEFAULT, "a.yaml")
    b = parse_policy("# comment\n" + DEFAULT, "b.yaml")
    c = parse_policy(DEFAULT.replace("min_samples: 200", "min_samples: 201"), "c.yaml")
    assert a.digest == b.digest != c.digest


def test_reason_placeholder_format():
    ok = parse_policy(DEFAULT, "p.yaml")
    rule = next(r for r in ok.rules if r.id == "sft-data-fails-verifiers")
    assert "data.max_substance_fail_rate|percent" in rule.placeholders
    text = DEFAULT.replace("{data.max_substance_fail_rate|percent}", "{data.max_substance_fail_rate|bogus}")
    [p] = problems(text)
    assert "unknown format 'bogus'" in p.message and p.field == f"rules[{ok.rules.index(rule)}].reason"


def test_schema_and_condition_problems_are_reported_together():
    text = DEFAULT.replace("min_samples: 200", "min_samples: 200\n    min_smaples: 1") \
        .replace('when: domain.risk == "critical"', "when: domain.risk > 3")
    found = problems(text)
    assert any("min_smaples" in p.message for p in found)
    assert any("critical-never-autonomous" in p.message and "type error" in p.message for p in found)


def test_macros_over_computed_lists_are_accepted_and_still_type_checked():
    ok = 'data.symbols.filter(s, s.rate > 0.1).exists(x, x.rows > 1) && [1, 2].exists(v, v > 1)'
    assert check_condition(ok) == ([], {"data": {"symbols"}})
    text = DEFAULT.replace('when: "true"', f"when: '{ok}'")
    parse_policy(text, "p.yaml")
    bad = DEFAULT.replace('when: "true"', "when: 'data.symbols.filter(s, s.rate > 0.1).exists(x, x.rows > \"a\")'")
    assert any("type error" in p.message for p in problems(bad))


def test_cel_extension_is_loaded_once_whoever_imports_it_first():
    import subprocess
    import sys

    script = ("from graduation.cel_loader import load_cel\nm = load_cel()\nimport cel, sys\n"
              "assert sys.modules['cel.cel'] is m and cel.compile('1 + 1 == 2').execute({}) is True\n"
              "print('ok')")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
