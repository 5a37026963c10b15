from __future__ import annotations

from pathlib import Path

import pytest

from graduation.errors import SpecError
from graduation.spec import DomainSpec, json_schema, lineage_depths, load_domain, parse_domain
from tests.conftest import write_domain

GOOD = """\
domain: hamiltonian-mechanics
title: Equations of motion from a Hamiltonian
risk: high
owners: [physics-ml@example.org]
task: {prompt_field: prompt, answer_field: answer}
ground_truth:
  - {name: textbook, path: data/textbook.jsonl, provenance: expert}
  - name: distilled
    path: data/distilled.jsonl
    provenance: model_generated
    derived_from: textbook
    generated_by: {model: some-instruct-32b}
verifiers:
  - {name: equations, kind: math, role: substance, controls: data/known_wrong.jsonl}
  - {name: latex-shape, kind: regex, role: format, options: {pattern: '^\\$.*\\$$'}}
slices:
  - {name: outside-crosswalk, when: "at_crosswalk == false"}
training:
  base_model: some/model
  grpo: {num_generations: 16}
deployment: {target: assisted}
"""


def parse(text: str, root: Path | None = None) -> DomainSpec:
    root = root or Path("/proj")
    return parse_domain(text, "domains/d.yaml", root, root / "domains")


def problems(text: str, root: Path | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse(text, root)
    return [p.render() for p in info.value.problems]


def test_good_domain_parses_and_paths_become_project_relative():
    spec = parse(GOOD)
    assert spec.domain == "hamiltonian-mechanics"
    assert spec.risk.value == "high"
    assert spec.ground_truth[0].path == "domains/data/textbook.jsonl"
    assert spec.verifiers[0].controls == "domains/data/known_wrong.jsonl"
    assert [v.name for v in spec.substance_verifiers()] == ["equations"]
    assert [v.name for v in spec.format_verifiers()] == ["latex-shape"]
    assert lineage_depths(spec.ground_truth) == {"textbook": 0, "distilled": 1}


def test_content_hash_is_canonical_and_sensitive():
    a = parse(GOOD)
    b = parse(GOOD.replace("physics-ml@example.org", "physics-ml@example.org  "))  # whitespace stripped
    assert a.content_hash() == b.content_hash()
    c = parse(GOOD.replace("num_generations: 16", "num_generations: 8"))
    assert a.content_hash() != c.content_hash()
    # training knobs do not touch the evidence basis; verifiers and data do
    assert a.basis_hash() == c.basis_hash()
    assert a.basis_hash({"x": "1"}) != a.basis_hash({"x": "2"})
    d = parse(GOOD.replace("kind: math", "kind: numeric"))
    assert a.basis_hash() != d.basis_hash()


@pytest.mark.parametrize("old,new,expected", [
    ("risk: high", "risk: hihg", "domains/d.yaml:3:1: risk: 'hihg' is not one of"),
    ("title: Equations", "titel: Equations", "domains/d.yaml:2:1: titel: unknown key 'titel' (did you mean 'title'?)"),
    ("domain: hamiltonian-mechanics", "domain: Hamiltonian Mechanics", "domains/d.yaml:1:1: domain: 'Hamiltonian Mechanics' is not valid"),
    ("owners: [physics-ml@example.org]\n", "", "domains/d.yaml:1:1: owners: required field is missing"),
    ("num_generations: 16}", "num_generations: 16}\n  format_reward_weight: lots", "training.format_reward_weight: Input should be a valid number"),
    ("path: data/textbook.jsonl", "path: ../../../etc/passwd", "outside the project"),
    ("role: format, options:", "role: format, pattern: x, options:", "verifiers[1].pattern: unknown key 'pattern' (verifier-specific settings go under options:)"),
    ("derived_from: textbook", "derived_from: nowhere", "derived_from 'nowhere' is not a source"),
    ("    generated_by: {model: some-instruct-32b}\n", "", "a model_generated source needs generated_by"),
    ('when: "at_crosswalk == false"', 'field: x, when: "y"', "either field (with equals) or when"),
])
def test_each_error_names_file_line_and_field(old, new, expected):
    assert old in GOOD
    found = problems(GOOD.replace(old, new))
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once():
    text = GOOD.replace("risk: high", "risk: extreme").replace("title:", "titl:")
    found = problems(text)
    assert len(found) == 3  # bad risk, unknown titl, missing title
    assert all(p.startswith("domains/d.yaml:") for p in found)


def test_duplicate_names_are_refused():
    text = GOOD.replace("name: latex-shape", "name: equations")
    assert any("the name 'equations' is used twice" in p for p in problems(text))


def test_lineage_cycle_is_refused():
    text = GOOD.replace("  - {name: textbook, path: data/textbook.jsonl, provenance: expert}",
                        "  - {name: textbook, path: data/textbook.jsonl, provenance: unknown, derived_from: distilled}")
    assert any("cycle" in p for p in problems(text))


def test_paths_outside_project_allowed_only_by_the_project_config(tmp_path: Path):
    project = tmp_path / "proj"
    project.mkdir()
    text = GOOD.replace("path: data/textbook.jsonl", "path: ../../outside.jsonl")
    assert any("outside the project" in p for p in problems(text, project))
    # the domain file cannot grant it to itself (the stakes are not self-declared)
    found = problems("allow_paths_outside_project: true\n" + text, project)
    assert any("cannot allow itself" in p and "domains/d.yaml:1" in p for p in found)
    (project / "graduation.yaml").write_text("allowed_roots: [..]\n")
    spec = parse(text, project)
    assert spec.ground_truth[0].path.endswith("outside.jsonl")
    (project / "graduation.yaml").write_text("allowed_roots: 3\n")
    assert any("graduation.yaml" in p for p in problems(text, project))


def test_top_level_must_be_a_mapping():
    assert problems("- a\n- b\n")[0].startswith("domains/d.yaml:1:1: a domain file must be a YAML mapping")


def test_load_domain_reads_files_and_reports_missing_and_bad_utf8(tmp_path: Path):
    path = write_domain(tmp_path)
    assert load_domain(path, tmp_path).domain == "toy"
    with pytest.raises(SpecError, match="file not found"):
        load_domain(tmp_path / "nope.yaml", tmp_path)
    bad = tmp_path / "domains" / "bad.yaml"
    bad.write_bytes(b"domain: x\ntitle: \xff\xfe\n")
    with pytest.raises(SpecError) as info:
        load_domain(bad, tmp_path)
    assert info.value.problems[0].line == 2
    assert "UTF-8" in str(info.value)


def test_json_schema_describes_the_file():
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["required"]) >= {"domain", "title", "risk", "owners"}
    assert schema["additionalProperties"] is False
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    data = yaml.safe_load(GOOD)
    jsonschema.validate(data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "risk": "extreme"}, schema)
