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


def lora_adapter(base_dir: Path, out: Path, seed: int = 3) -> Path:
    """A LoRA adapter of the tiny model whose update is far from zero (its answers are not the base's)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from graduation.training.runner import load_model, save_checkpoint

    model, tokenizer = load_model(str(base_dir))
    torch.manual_seed(seed)
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=512, target_modules=["q_proj", "v_proj", "down_proj"],
                                            init_lora_weights=False))
    return save_checkpoint(lora, tokenizer, out, "tiny:arithmetic")


def test_generate_applies_a_lora_adapter_to_its_registered_base(project, cli, db_url, tiny, tmp_path):
    """An adapter is sampled on the base its lineage pins by digest; its round is the adapter's own."""
    pytest.importorskip("peft")
    from graduation.models import manifest
    from graduation.store import Database
    from graduation.store.models import register_model
    from graduation.training.sample import sample

    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    base_dir = shutil.copytree(tiny, tmp_path / "base")
    adapter_dir = lora_adapter(base_dir, tmp_path / "adapter")
    rows = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a, b in ((1, 2), (3, 4), (5, 1), (2, 2))]
    fields = {"prompt_field": "prompt", "answer_field": "answer", "id_field": None, "max_new_tokens": 6}
    own = [r["output"] for r in sample(adapter_dir, rows, base_dir=base_dir, **fields)]
    assert own != [r["output"] for r in sample(base_dir, rows, **fields)]  # the adapter is applied, not skipped

    assert cli("models", "register", "tiny-base", "--path", str(base_dir)).exit_code == 0
    # an adapter is registered with its base: alone it is not a model
    loose = cli("models", "register", "loose", "--path", str(adapter_dir))
    assert loose.exit_code == 2 and "--adapter-of" in loose.stderr, loose.output
    assert cli("models", "register", "x", "--path", str(adapter_dir), "--adapter-of", "nope").exit_code == 2
    not_adapter = cli("models", "register", "x", "--path", str(base_dir), "--adapter-of", "tiny-base")
    assert not_adapter.exit_code == 2 and "adapter_config.json" in not_adapter.stderr
    shown = cli("models", "register", "tiny-lora", "--path", str(adapter_dir), "--adapter-of", "tiny-base", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["base"]["model"] == "tiny-base@1"
    result = cli("evaluate", "toy-arithmetic", "--model", "tiny-lora", "--generate", "--limit", "4",
                 "--max-new-tokens", "6", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["origin"], record["n"], record["model"]) == ("generated", 4, "tiny-lora@1")
    # the same files cannot be registered again on another base: the first record stands
    other = shutil.copytree(tiny, tmp_path / "other-base")
    (other / "note.txt").write_text("another artifact")
    assert cli("models", "register", "other-base", "--path", str(other)).exit_code == 0
    again = cli("models", "register", "tiny-lora", "--path", str(adapter_dir), "--adapter-of", "other-base")
    assert again.exit_code == 2 and "tiny-base@1" in again.stderr
    # an adapter registered without its base (as before --adapter-of) is never sampled alone
    (adapter_dir / "NOTES.txt").write_text("the same adapter, another artifact")
    db = Database(db_url)
    db.transact(lambda s: register_model(s, "loose", digest=manifest(adapter_dir).digest, kind="manifest",
                                         path=str(adapter_dir)))
    refused = cli("evaluate", "toy-arithmetic", "--model", "loose", "--generate", "--limit", "2")
    assert refused.exit_code == 2 and "without its base" in refused.stderr, refused.output
    # the base changed after registration: the adapter's answers would be another artifact's
    (adapter_dir / "NOTES.txt").unlink()
    weights = base_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    changed = cli("evaluate", "toy-arithmetic", "--model", "tiny-lora", "--generate", "--limit", "2")
    assert changed.exit_code == 2 and "not the registered" in changed.stderr and "base" in changed.stderr
