"""Attacks by a4 on the verdict cache, the policy pins and the adapters sampled by `evaluate --generate`."""

from __future__ import annotations

import json

import pytest

from tests.test_attack_a3 import _command_project, proj, registered_and_validated  # noqa: F401 - fixture
from tests.test_signoffs import domains, keys  # noqa: F401 - fixtures

pytestmark = pytest.mark.db

HONEST = "def same(o, r):\n    return str(o).strip() == str(r).strip()\n"


def test_verdicts_cached_by_a_command_whose_local_import_was_edited_do_not_answer_for_the_restored_one(
        cli, project, db_url, tmp_path):
    """The cache key of a command verifier covered its argv, not the script nor what it imports: with the project
    files, edit scripts/rules.py to pass everything, register, evaluate (the passes are cached), put the honest
    file back and register again; the honest version's evaluation then read the forged passes from the cache."""
    _command_project(project, cli, db_url)
    for name, digit in (("m1", "1"), ("m2", "2")):
        assert cli("models", "register", name, "--digest", "sha256:" + digit * 64).exit_code == 0
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    rules = project / "scripts" / "rules.py"
    rules.write_text("def same(o, r):\n    return True\n")
    assert cli("register", str(project / "domains")).exit_code == 0
    forged = json.loads(cli("evaluate", "cmd", "--outputs", str(outputs), "--model", "m1", "--json").stdout)
    assert forged["record"]["passed"] == 1  # what the edited verifier says
    rules.write_text(HONEST)
    assert cli("register", str(project / "domains")).exit_code == 0
    result = cli("evaluate", "cmd", "--outputs", str(outputs), "--model", "m2", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["n"], record["passed"]) == (1, 0), record  # the honest verifier's verdict, not the cached one


def test_verdicts_cached_by_a_python_verifier_whose_helper_was_edited_do_not_answer_for_the_restored_one(
        cli, proj, tmp_path):
    """The same with a python verifier: its cache key covered the module's own source, not checks/helper.py."""

    for name, digit in (("m1", "1"), ("m2", "2")):
        assert cli("models", "register", name, "--digest", "sha256:" + digit * 64).exit_code == 0
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    helper = proj / "checks" / "helper.py"
    honest = helper.read_text()
    helper.write_text("def norm(x):\n    return ''\n")  # every output equals every reference
    assert cli("register", str(proj / "domains")).exit_code == 0
    forged = json.loads(cli("evaluate", "toy", "--outputs", str(outputs), "--model", "m1", "--json").stdout)
    assert forged["record"]["passed"] == 1
    helper.write_text(honest)
    assert cli("register", str(proj / "domains")).exit_code == 0
    result = cli("evaluate", "toy", "--outputs", str(outputs), "--model", "m2", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["n"], record["passed"]) == (1, 0), record


def test_weights_an_index_names_outside_the_registered_directory_are_not_sampled(project, cli, tmp_path):
    """The digest covers the files under the model directory, but transformers reads the shards that
    model.safetensors.index.json names, joined to the directory as written: `../outside.safetensors` loaded
    weights the digest never covered, so they could be swapped for another model's after registration and the
    round recorded as sampled from the registered digest."""
    pytest.importorskip("transformers")
    import shutil

    from safetensors import safe_open

    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base
    from tests.conftest import REPO

    tiny = tmp_path / "tiny"
    build_tiny_base(tiny, arithmetic_corpus(200, p_correct=0.35, max_operand=9),
                    TinyConfig(hidden_size=32, intermediate_size=64, pretrain_steps=2))
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    model_dir = tmp_path / "models" / "tiny"
    shutil.copytree(tiny, model_dir)
    with safe_open(str(model_dir / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    shutil.move(model_dir / "model.safetensors", tmp_path / "models" / "outside.safetensors")
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: "../outside.safetensors" for k in keys}}))
    registered = cli("models", "register", "tiny", "--path", str(model_dir))
    assert registered.exit_code in (0, 2), registered.output
    if registered.exit_code == 0:
        result = cli("evaluate", "toy-arithmetic", "--model", "tiny", "--generate", "--limit", "2",
                     "--max-new-tokens", "4", "--json")
        assert result.exit_code == 2, result.output
        assert "outside.safetensors" in result.output
    else:
        assert "outside.safetensors" in registered.output
    gate = cli("status", "toy-arithmetic", "--model-path", str(model_dir), "--require", "deploy:sandbox")
    assert gate.exit_code == 2 and "outside.safetensors" in gate.output, gate.output  # the directory about to ship


def test_every_pin_hidden_from_the_lookup_by_its_kind_is_found_by_audit_verify(cli, keys, domains, project,  # noqa: F811
                                                                               db_url):
    """The decision path finds pins by kind (`WHERE kind = 'policy_pin'`): a pin whose kind column is edited is no
    longer looked at, and the project file decides again. The kind is in the entry's hash, so `audit verify` names
    the entry (re-hashing it and every entry after it is the unkeyed chain's limit, found by --checkpoint)."""
    import sqlite3

    from tests.test_policy_pins import GATE, approved, pin, weaken

    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite file edited as an attacker does")
    approved(cli, keys)
    assert pin(cli, keys, "alice@example.org").exit_code == 0
    weaken(project)
    assert cli(*GATE).exit_code == 1
    conn = sqlite3.connect(db_url.split("///", 1)[1])
    with conn:
        conn.execute("UPDATE audit_log SET kind = 'decision' WHERE kind = 'policy_pin'")
    conn.close()
    verify = cli("audit", "verify")
    assert verify.exit_code == 1, verify.output


MODULE_COMMAND = """\
domain: cmd
title: Cmd
risk: low
owners: [a@example.org]
ground_truth:
  - {name: ref, path: data/cmd.jsonl, provenance: expert, audited: true}
verifiers:
  - name: answer
    kind: command
    role: substance
    options: {argv: [python3, -m, judge]}
"""


def test_a_module_a_command_runs_with_python_m_is_part_of_the_identity(cli, project, db_url, tmp_path):
    """`python3 -m judge` runs judge.py from the project root (the command's working directory): the identity
    covered only the `.py` arguments, so editing judge.py to pass everything changed every verdict without a
    new version."""
    from tests.conftest import write_domain

    (project / "judge.py").write_text(
        "import json, sys\nfrom rules import same\n\nd = json.load(sys.stdin)\n"
        "print(json.dumps({'pass': same(d['output'], d['reference'])}))\n")
    (project / "rules.py").write_text(HONEST)
    write_domain(project, "cmd", text=MODULE_COMMAND, rows='{"prompt": "1+1=", "answer": "2"}\n')
    registered_and_validated(cli, project, db_url, "cmd", "command")
    assert cli("models", "register", "m1", "--digest", "sha256:" + "1" * 64).exit_code == 0
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    honest = json.loads(cli("evaluate", "cmd", "--outputs", str(outputs), "--model", "m1", "--json").stdout)
    assert honest["record"]["passed"] == 0
    (project / "rules.py").write_text("def same(o, r):\n    return True\n")
    result = cli("status", "cmd", "--require", "train:grpo")
    assert result.exit_code == 1 and "rules.py changed" in result.output, result.output
    (project / "rules.py").write_text(HONEST)
    (project / "judge.py").write_text("print('{\"pass\": true}')\n")
    result = cli("status", "cmd", "--require", "train:grpo")
    assert result.exit_code == 1 and "judge.py changed" in result.output, result.output


def test_an_output_given_as_text_does_not_read_the_verdict_of_the_same_output_given_as_json(cli, proj, tmp_path):
    """The cache key hashed a text part as it is and any other value as its JSON: the output `{"a": 1}` (an object)
    and the text '{"a": 1}' had one key, so a verdict on one answered for the other (a verifier may tell them
    apart: this one passes only an object)."""
    (proj / "checks" / "toy.py").write_text("def same(o, r, row=None):\n    return isinstance(o, dict)\n")
    assert cli("register", str(proj / "domains")).exit_code == 0
    for name, digit in (("m1", "1"), ("m2", "2"), ("m3", "3")):
        assert cli("models", "register", name, "--digest", "sha256:" + digit * 64).exit_code == 0
    as_json = tmp_path / "json.jsonl"
    as_json.write_text(json.dumps({"prompt": "1+1=", "output": {"a": 1}}) + "\n")
    first = cli("evaluate", "toy", "--outputs", str(as_json), "--model", "m1", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["record"]["passed"] == 1
    as_text = tmp_path / "text.jsonl"
    as_text.write_text(json.dumps({"prompt": "1+1=", "output": json.dumps({"a": 1}, sort_keys=True)}) + "\n")
    honest = cli("evaluate", "toy", "--outputs", str(as_text), "--model", "m3", "--json", "--no-cache")
    assert json.loads(honest.stdout)["record"]["passed"] == 0, honest.output  # what the verifier says of the text
    second = cli("evaluate", "toy", "--outputs", str(as_text), "--model", "m2", "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["record"]["passed"] == 0


FIXTURE_DOMAIN = """\
domain: toy
title: Toy
risk: low
owners: [a@example.org]
ground_truth:
  - {name: ref, path: data/toy.jsonl, provenance: expert, audited: true}
verifiers:
  - name: answer
    kind: python
    role: substance
    options: {function: "checks.fixture:same", files: [checks/accepted.json]}
"""


def test_verdicts_cached_while_a_fixture_was_edited_do_not_answer_for_the_restored_fixture(cli, project, tmp_path):
    """`options.files` (the fixtures a verifier reads) are in the domain's identity but were not in the cache key:
    a fixture edited to accept everything, registered and evaluated, left passes that answered for the honest
    fixture put back and registered again."""
    from tests.conftest import write_domain

    (project / "checks").mkdir()
    (project / "checks" / "__init__.py").write_text("")
    (project / "checks" / "fixture.py").write_text(
        "import json\nfrom pathlib import Path\n\n\ndef same(o, r, row=None):\n"
        "    accepted = json.loads((Path(__file__).parent / 'accepted.json').read_text())\n"
        "    return accepted == '*' or str(o).strip() == str(r).strip()\n")
    fixture = project / "checks" / "accepted.json"
    fixture.write_text('"exact"')
    write_domain(project, "toy", text=FIXTURE_DOMAIN, rows='{"prompt": "1+1=", "answer": "2"}\n')
    assert cli("register", str(project / "domains")).exit_code == 0
    for name, digit in (("m1", "1"), ("m2", "2")):
        assert cli("models", "register", name, "--digest", "sha256:" + digit * 64).exit_code == 0
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    fixture.write_text('"*"')
    assert cli("register", str(project / "domains")).exit_code == 0
    forged = json.loads(cli("evaluate", "toy", "--outputs", str(outputs), "--model", "m1", "--json").stdout)
    assert forged["record"]["passed"] == 1
    fixture.write_text('"exact"')
    assert cli("register", str(project / "domains")).exit_code == 0
    result = cli("evaluate", "toy", "--outputs", str(outputs), "--model", "m2", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["record"]["passed"] == 0


def test_an_adapter_of_an_adapter_is_not_sampled_on_a_base_no_digest_covers(project, cli, tmp_path):
    """`--adapter-of` accepts an adapter as the base. Sampling the second adapter loaded its base's directory with
    transformers, which (peft installed) loads the model named by that directory's adapter_config.json
    (`base_model_name_or_path`, any path) and applies the adapter: weights no registered digest covers."""
    pytest.importorskip("peft")
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base
    from tests.conftest import REPO

    tiny = tmp_path / "tiny"
    build_tiny_base(tiny, arithmetic_corpus(200, p_correct=0.35, max_operand=9),
                    TinyConfig(hidden_size=32, intermediate_size=64, pretrain_steps=2))
    elsewhere = shutil.copytree(tiny, tmp_path / "elsewhere")  # any model, swappable at will
    for name in ("a1", "a2"):
        peft = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny)),
                              LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
        peft.save_pretrained(str(tmp_path / name))
        config = tmp_path / name / "adapter_config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": str(elsewhere)}))
        for kept in ("tokenizer.json", "tokenizer_config.json"):  # the tokenizer kept beside the adapter
            shutil.copy(tiny / kept, tmp_path / name / kept)
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "base", "--path", str(tiny)).exit_code == 0
    assert cli("models", "register", "a1", "--path", str(tmp_path / "a1"), "--adapter-of", "base").exit_code == 0
    second = cli("models", "register", "a2", "--path", str(tmp_path / "a2"), "--adapter-of", "a1")
    assert second.exit_code in (0, 2), second.output
    if second.exit_code == 0:
        result = cli("evaluate", "toy-arithmetic", "--model", "a2", "--generate", "--limit", "2",
                     "--max-new-tokens", "4", "--json")
        assert result.exit_code == 2, result.output
        assert "a1" in result.output and "adapter" in result.output


@pytest.mark.parametrize("config", ["[]", '{"model_type": "llama", "hidden_size": "x"}',
                                    '{"model_type": "llama", "num_hidden_layers": -1}'])
def test_a_registered_model_whose_config_does_not_load_is_exit_2_not_a_traceback(project, cli, tmp_path, config):
    """`evaluate --generate` of a model directory whose config.json is of another shape (or holds values of another
    type) raised TypeError / RuntimeError out of transformers: a traceback, exit 1."""
    pytest.importorskip("transformers")
    import shutil

    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base
    from tests.conftest import REPO

    tiny = tmp_path / "tiny"
    build_tiny_base(tiny, arithmetic_corpus(100, p_correct=0.35, max_operand=9),
                    TinyConfig(hidden_size=32, intermediate_size=64, pretrain_steps=1))
    (tiny / "config.json").write_text(config)
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "t", "--path", str(tiny)).exit_code == 0
    result = cli("evaluate", "toy-arithmetic", "--model", "t", "--generate", "--limit", "2", "--max-new-tokens", "3")
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("config", ["[]", '{"peft_type": "LORA", "r": "x", "target_modules": ["q_proj"]}'])
def test_an_adapter_whose_config_does_not_load_is_exit_2_not_a_traceback(project, cli, tmp_path, config):
    """An adapter_config.json of another shape (or a value of another type) raised AttributeError / TypeError out of
    peft while the adapter was applied to its base: a traceback, exit 1."""
    pytest.importorskip("peft")
    import shutil

    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base
    from tests.conftest import REPO

    tiny = tmp_path / "tiny"
    build_tiny_base(tiny, arithmetic_corpus(100, p_correct=0.35, max_operand=9),
                    TinyConfig(hidden_size=32, intermediate_size=64, pretrain_steps=1))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(config)
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "base", "--path", str(tiny)).exit_code == 0
    assert cli("models", "register", "a", "--path", str(adapter), "--adapter-of", "base").exit_code == 0
    result = cli("evaluate", "toy-arithmetic", "--model", "a", "--generate", "--limit", "2", "--max-new-tokens", "3")
    assert result.exit_code == 2, result.output


def test_a_tokenizer_whose_ids_the_model_has_no_embedding_for_is_exit_2_not_a_traceback(project, cli, tmp_path):
    """tokenizer.json edited (before registration) to give ids past the model's vocabulary: generation raised
    IndexError out of torch, a traceback, exit 1."""
    pytest.importorskip("transformers")
    import shutil

    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base
    from tests.conftest import REPO

    tiny = tmp_path / "tiny"
    build_tiny_base(tiny, arithmetic_corpus(100, p_correct=0.35, max_operand=9),
                    TinyConfig(hidden_size=32, intermediate_size=64, pretrain_steps=1))
    data = json.loads((tiny / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    for token in list(vocab)[:40]:
        vocab[token] += 100_000
    (tiny / "tokenizer.json").write_text(json.dumps(data))
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", project / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", project / "domains" / "data" / "toy-arithmetic")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "t", "--path", str(tiny)).exit_code == 0
    result = cli("evaluate", "toy-arithmetic", "--model", "t", "--generate", "--limit", "2", "--max-new-tokens", "3")
    assert result.exit_code == 2 and "does not generate" in result.output, result.output
