"""The cases of the default policy as CLI runs on the shipped example domains (`domains/`).

Evidence is gathered the way a user would: `verifiers check`, `audit-data`, `evaluate`; then
`status --require`, `explain` and `approve` must give the decisions the domains were built to show.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REGISTRY_BIN, run_registry

REPO = Path(__file__).resolve().parent.parent
DATA = "domains/data"


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    registry_bin = REGISTRY_BIN if REGISTRY_BIN.exists() else Path(shutil.which("registry") or "registry")
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(REPO / "domains", root / "domains")
    (root / "registry").mkdir()
    (root / "policies").mkdir()
    env = {"GRADUATION_PROJECT": str(root), "REGISTRY_DB_URL": f"sqlite:///{root / 'registry' / 'registry.db'}"}

    def run(*args: str):
        return run_registry(registry_bin, *args, cwd=root, env=env)

    names = ["hamiltonian-mechanics", "acls-cardiac-arrest", "pedestrian-perception"]
    assert run("register", *[f"domains/{n}.yaml" for n in names]).returncode == 0
    for name in names:
        result = run("verifiers", "check", name, "--workers", "2")
        assert result.returncode == 0, result.stdout + result.stderr
    steps = [("models", "register", "m1", "--digest", "sha256:" + "1" * 64),
             ("audit-data", "hamiltonian-mechanics", f"{DATA}/hamiltonian-mechanics/distilled.jsonl"),
             ("evaluate", "hamiltonian-mechanics", "-o", f"{DATA}/hamiltonian-mechanics/outputs.jsonl", "-m", "m1"),
             ("evaluate", "pedestrian-perception", "-o", f"{DATA}/pedestrian-perception/outputs.jsonl", "-m", "m1")]
    for step in steps:
        result = run(*step)
        assert result.returncode == 0, result.stdout + result.stderr
    run.signers = root / "policies" / "allowed_signers"
    return run


def test_hamiltonian_sft_refused_naming_symbol_rate_and_rule_grpo_allowed(examples):
    result = examples("status", "hamiltonian-mechanics", "--require", "train:sft")
    assert result.returncode == 1
    assert "sft-unsupported-symbols" in result.stdout and "golden_hour_sun in 40% of rows" in result.stdout
    assert "some-instruct-32b" in result.stdout
    assert examples("status", "hamiltonian-mechanics", "--require", "train:grpo").returncode == 0
    explained = examples("explain", "hamiltonian-mechanics", "deploy:shadow", "--model", "m1")
    assert explained.returncode == 1 and "Wilson lower bound 0.53 < 0.95" in explained.stdout


def test_pedestrian_critical_discovery_sandbox_only_naming_slice_and_flips(examples):
    m1 = ("--model", "m1")
    result = examples("status", "pedestrian-perception", *m1, "--require", "deploy:autonomous")
    assert result.returncode == 1
    assert "slice outside-crosswalk" in result.stdout and "answers flip on" in result.stdout
    assert examples("status", "pedestrian-perception", *m1, "--require", "deploy:sandbox").returncode == 0
    for action in ("deploy:shadow", "deploy:assisted", "online:grpo"):
        assert examples("status", "pedestrian-perception", *m1, "--require", action).returncode == 1
    assert examples("status", "pedestrian-perception", "--require", "train:sft").returncode == 1


def test_acls_sft_allowed_assisted_waits_for_the_models_own_rounds_never_online(examples, tmp_path):
    from tests.test_signoffs import keygen

    """The protocol grants data trust (SFT); deploying an assistant needs its own rounds and two sign-offs."""
    assert examples("status", "acls-cardiac-arrest", "--require", "train:sft").returncode == 0
    assert examples("status", "acls-cardiac-arrest", "--require", "deploy:assisted").returncode == 2  # which model?
    m1 = ("--model", "m1")
    assert examples("evaluate", "acls-cardiac-arrest", "-o", f"{DATA}/acls-cardiac-arrest/outputs.jsonl",
                    *m1).returncode == 0
    waits = examples("status", "acls-cardiac-arrest", *m1, "--require", "deploy:assisted")
    assert waits.returncode == 1 and "distinct prompts 24 < 1,000" in waits.stdout
    refused = examples("approve", "acls-cardiac-arrest", *m1, "--action", "deploy:assisted", "--by", "Dr Lee",
                       "--role", "resuscitation-lead")
    assert refused.returncode == 1 and "not recorded" in refused.stderr
    # signed by a listed key: still refused while the model's own rounds fall short (nothing written)
    keys = {p: keygen(tmp_path / p.split("@")[0], p) for p in ("lee@example.org", "diaz@example.org")}
    examples.signers.write_text("".join(f"{p} {k.with_suffix('.pub').read_text()}" for p, k in keys.items()))
    signed = examples("approve", "acls-cardiac-arrest", *m1, "--action", "deploy:assisted", "--by", "lee@example.org",
                      "--role", "resuscitation-lead", "--key", str(keys["lee@example.org"]))
    assert signed.returncode == 1 and "not recorded" in signed.stderr
    assert examples("status", "acls-cardiac-arrest", *m1, "--require", "deploy:autonomous").returncode == 1
    assert examples("status", "acls-cardiac-arrest", *m1, "--require", "online:grpo").returncode == 1
    assert examples("audit", "verify").returncode == 0
