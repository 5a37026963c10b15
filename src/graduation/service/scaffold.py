"""``registry init``: a new project with an example domain, the default policy and a registry home."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from graduation.atomicfile import atomic_write_text
from graduation.verifiers.catalog import domain_schema

EXAMPLE_DOMAIN = """\
# yaml-language-server: $schema=../registry/domain.schema.json
# An example domain. Try it with `registry validate examples/`; to use it, copy it (and its data/) into
# domains/, then `registry register domains/`. Until then it counts in no `status --require` gate.
domain: example-arithmetic
title: Two-number arithmetic
description: Add two small integers; the answer is a single number.
risk: low
owners: [you@example.org]
task: {prompt_field: prompt, answer_field: answer}
ground_truth:
  - name: reference
    path: data/example-arithmetic/reference.jsonl
    provenance: expert
    split: all
verifiers:
  - name: exact-answer
    kind: numeric
    role: substance
    options: {abs_tol: 0, last_number_fallback: false}   # the whole output must be the number
  - name: digits-only
    kind: regex
    role: format
    options: {pattern: '^-?[0-9]+$'}
deployment: {target: assisted}
"""

GITIGNORE = "registry.db*\njobs/\nreports/\ncache/\n"

DOMAINS_README = """\
# Domains

One YAML file per domain. Start from the example: `cp -r examples/example.yaml examples/data domains/`
(from the project root), then `registry validate domains/` and `registry register domains/`.
The example lives outside domains/ so that it is registered only when you ask: a registered domain counts
in `registry status --require ...` gates.
"""

POLICY_TESTS = """\
# Unit tests of policies/default.yaml: `registry policy test policies/tests` (exit 0 when every case holds).
# Each case: a domain (as in a domain file), its evidence records, and the decision expected. Add a case for
# every rule you write or change.
cases:
  - name: a new low-risk domain without evidence - only the sandbox
    domain:
      domain: example-arithmetic
      title: Two-number arithmetic
      risk: low
      owners: [you@example.org]
      ground_truth:
        - {name: reference, path: data/reference.jsonl, provenance: expert}
      verifiers:
        - {name: exact-answer, kind: numeric, role: substance}
    evidence: []
    expect:
      phase: discovery
      allow: [deploy:sandbox]
      deny: [train:grpo, train:sft, deploy:shadow, deploy:assisted, deploy:autonomous, online:grpo]
      rules:
        train:grpo: [no-validated-substance-verifier]
"""


def _example_rows() -> str:
    import json

    rows = []
    for a in range(2, 9):
        for b in range(1, 4):
            rows.append(json.dumps({"prompt": f"{a}+{b}=", "answer": str(a + b)}))
    return "\n".join(rows) + "\n"


def _default_policy() -> str | None:
    try:
        return resources.files("graduation.policy").joinpath("default.yaml").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def scaffold(directory: Path, force: bool = False) -> list[tuple[str, str]]:
    """Create the project skeleton; returns (path, status) for each file. Existing files are kept."""
    import json

    directory = Path(directory)
    files: dict[str, str] = {
        "examples/example.yaml": EXAMPLE_DOMAIN.replace("../registry/", "../registry/"),
        "examples/data/example-arithmetic/reference.jsonl": _example_rows(),
        "domains/README.md": DOMAINS_README,
        "policies/tests/example_cases.yaml": POLICY_TESTS,
        "registry/.gitignore": GITIGNORE,
        "registry/domain.schema.json": json.dumps(domain_schema(), indent=2) + "\n",
    }
    policy = _default_policy()
    if policy is not None:
        files["policies/default.yaml"] = policy
    results = []
    for rel, content in files.items():
        path = directory / rel
        if path.exists() and not force:
            results.append((rel, "kept"))
            continue
        atomic_write_text(path, content)
        results.append((rel, "created"))
    (directory / "policies").mkdir(parents=True, exist_ok=True)
    return results
