"""`evaluate --generate`: the registry samples the registered artifact itself (a tiny Llama built here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base

    out = tmp_path_factory.mktemp("tiny")
    build_tiny_base(out, arithmetic_corpus(1000, p_correct=0.35, max_operand=9),
                    TinyConfig(hidden_size=32, intermediate_size=64, pretrain_steps=20))
    return out


def test_generate_samples_the_registered_artifact_and_marks_the_round(project, cli, tiny, tmp_path):
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    model_dir = shutil.copytree(tiny, tmp_path / "tiny-copy")
    assert cli("models", "register", "tiny-base", "--path", str(model_dir)).exit_code == 0
    result = cli("evaluate", "toy-arithmetic", "--model", "tiny-base", "--generate", "--limit", "8",
                 "--max-new-tokens", "6", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["origin"], record["n"], record["model"], record["round"]) == ("generated", 8, "tiny-base@1", 1)
    assert "sampled by the registry" in record["outputs_file"]
    status = json.loads(cli("status", "toy-arithmetic", "--model", "tiny-base", "--json").stdout)
    facts_rounds = status["decisions"][0]
    assert facts_rounds["model"]["ref"] == "tiny-base@1"
    explain = json.loads(cli("explain", "toy-arithmetic", "deploy:sandbox", "--model", "tiny-base", "--json").stdout)
    assert explain["allowed"] is True
    # an artifact changed after registration is never sampled under the registered digest
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    changed = cli("evaluate", "toy-arithmetic", "--model", "tiny-base", "--generate", "--limit", "2")
    assert changed.exit_code == 2 and "not the registered" in changed.stderr
    # a model known only by digest has no files here to sample
    assert cli("models", "register", "remote", "--digest", "sha256:" + "d" * 64).exit_code == 0
    remote = cli("evaluate", "toy-arithmetic", "--model", "remote", "--generate")
    assert remote.exit_code == 2 and "--path DIR" in remote.stderr
    assert cli("evaluate", "toy-arithmetic", "--model", "tiny-base").exit_code == 2  # neither --outputs nor --generate


def test_generated_rounds_fact_counts_only_generated_rounds():
    from graduation.policy import decide, load_policy
    from graduation.policy.model import packaged_policy_path
    from graduation.policy.testing import make_evidence
    from graduation.spec import DomainSpec

    spec = DomainSpec.model_validate({"domain": "t", "title": "t", "risk": "low", "owners": ["a@example.org"],
                                      "ground_truth": [{"name": "r", "path": "data/t.jsonl", "provenance": "expert"}],
                                      "verifiers": [{"name": "v", "kind": "exact", "role": "substance"}]})
    ev = [make_evidence("t", "eval", {"model": "m@1", "n": 10, "passed": 10, "origin": o}, i)
          for i, o in enumerate(["submitted", "generated", "generated"])]
    model = {"ref": "m@1", "name": "m", "version": 1, "digest": "sha256:" + "1" * 64, "digest_kind": "manifest"}
    facts = decide(spec, ev, load_policy(packaged_policy_path()), model=model).facts["eval"]
    assert (facts["rounds"], facts["generated_rounds"]) == (3, 2)


def test_the_policies_readme_rule_requiring_generated_rounds_works():
    """policies/README.md shows how to require generated rounds: that very rule, added to the default policy."""
    import re

    from graduation.policy import decide, parse_policy
    from graduation.policy.model import packaged_policy_path
    from graduation.policy.testing import make_evidence
    from graduation.spec import DomainSpec

    readme = (REPO / "policies" / "README.md").read_text()
    snippet = re.search(r"To require them.*?```yaml\n(.*?)```", readme, re.S).group(1)
    policy = parse_policy(packaged_policy_path().read_text() + "\n" + snippet, "with-generated.yaml")
    spec = DomainSpec.model_validate({"domain": "t", "title": "t", "risk": "low", "owners": ["a@example.org"],
                                      "ground_truth": [{"name": "r", "path": "data/t.jsonl", "provenance": "expert"}],
                                      "verifiers": [{"name": "v", "kind": "exact", "role": "substance"}]})
    validation = make_evidence("t", "verifier_validation", {"verifiers": [{
        "name": "v", "role": "substance", "kind": "exact", "references": 20, "references_accepted": 20,
        "controls": 60, "controls_rejected": 60, "trustworthy": True}]}, 0)
    model = {"ref": "m@1", "name": "m", "version": 1, "digest": "sha256:" + "1" * 64, "digest_kind": "manifest"}
    for origin, allowed in (("submitted", False), ("generated", True)):
        # two qualifying rounds: the first makes candidate, the second graduates (issue 12)
        ev = [validation, *(make_evidence("t", "eval", {"model": "m@1", "n": 200, "passed": 200, "origin": origin,
                                                        "round": r}, r) for r in (1, 2))]
        d = decide(spec, ev, policy, model=model)
        assert d.phase == "graduated" and d.allowed("deploy:assisted") is allowed
        if not allowed:
            assert d.actions["deploy:assisted"].rules == ("deploy-needs-generated-rounds",)
