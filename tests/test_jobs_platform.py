"""Jobs a platform team runs unchanged: size presets, --set, dry runs, per-target launch commands, prompt
templates seen identically by training, rewards and evaluation, LoRA adapters, the no-learning-signal stop,
a Dockerfile and a TrainJob whose init container re-checks the decision (validated against the CRD's fields)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from graduation.errors import InputError
from graduation.jobs.presets import (STATED, model_size, parameters_from_config, parameters_from_name,
                                     parse_overrides, resolve_hyperparameters)
from tests.test_jobs import env, graduate  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent


# -- presets --------------------------------------------------------------------------------------------

def test_size_comes_from_name_config_or_declaration(tmp_path: Path):
    assert parameters_from_name("Qwen/Qwen2.5-7B-Instruct") == 7_000_000_000
    assert parameters_from_name("SmolLM2-135M") == 135_000_000
    assert parameters_from_name("gpt2") is None
    assert model_size("meta-llama/Llama-3.3-70B-Instruct").size_class == "70b"
    assert model_size("Qwen2.5-0.5B").size_class == "1b"
    assert model_size("tiny:arithmetic").size_class == "tiny"
    assert model_size("gpt2", declared="1b").source == "--model-size"
    # a local directory: its config.json says how big it is (a Llama-3-8B shape)
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"hidden_size": 4096, "num_hidden_layers": 32, "vocab_size": 128256,
                                               "intermediate_size": 14336, "num_attention_heads": 32,
                                               "num_key_value_heads": 8}))
    size = model_size(str(d))
    assert size.source == "config.json" and size.size_class == "8b"
    assert 7.5e9 < parameters_from_config(json.loads((d / "config.json").read_text())) < 8.5e9
    with pytest.raises(InputError, match="--model-size"):
        model_size("some-model")
    with pytest.raises(InputError, match="use one of"):
        model_size("x", declared="huge")


def test_presets_state_every_field_and_differ_by_size():
    for mode, keys in STATED.items():
        tiny = resolve_hyperparameters(mode, model_size("tiny:arithmetic")).values
        big = resolve_hyperparameters(mode, model_size("Qwen2.5-7B-Instruct")).values
        for key in keys:
            assert key in tiny and key in big, (mode, key)
        assert tiny["learning_rate"] > big["learning_rate"]
        assert big["bf16"] is True and tiny["bf16"] is False
        assert big["gradient_checkpointing"] is True


def test_domain_then_command_line_override_the_preset_and_sources_say_so():
    size = model_size("Qwen2.5-7B-Instruct")
    r = resolve_hyperparameters("grpo", size, domain={"max_steps": 300, "learning_rate": 2e-6},
                                overrides={"learning_rate": 3e-6})
    assert r.values["max_steps"] == 300 and r.sources["max_steps"] == "domain"
    assert r.values["learning_rate"] == 3e-6 and r.sources["learning_rate"] == "--set"
    assert r.sources["num_generations"] == "preset 8b"
    lora = resolve_hyperparameters("sft", size, peft="lora")
    assert lora.values["learning_rate"] > resolve_hyperparameters("sft", size).values["learning_rate"]
    assert lora.peft["method"] == "lora" and lora.peft["lora_r"] == 16
    with pytest.raises(InputError, match="need --peft lora"):
        resolve_hyperparameters("sft", size, overrides={"lora_r": 8})
    with pytest.raises(InputError, match="whole groups"):
        resolve_hyperparameters("grpo", size, overrides={"num_generations": 3})


def test_set_values_are_typed_and_malformed_pairs_refused():
    assert parse_overrides(["learning_rate=1e-6", "bf16=false", "max_steps=10", "lr_scheduler_type=cosine"]) == {
        "learning_rate": 1e-6, "bf16": False, "max_steps": 10, "lr_scheduler_type": "cosine"}
    for bad in ("learning_rate", "=3", "Bad-Key=1", "x={a: 1}"):
        with pytest.raises(InputError, match="--set"):
            parse_overrides([bad])


def test_recipes_for_tiny_and_7b_differ_by_preset_and_state_every_field(env):  # noqa: F811
    from graduation.service.jobs import plan_job

    root, db = env
    tiny = plan_job(db, root, "toy-arithmetic", mode="grpo", name="tiny-job").job
    big = plan_job(db, root, "toy-arithmetic", mode="grpo", name="big-job", model="Qwen/Qwen2.5-7B-Instruct",
                   overrides={"max_steps": 10}).job
    r_tiny = yaml.safe_load((tiny.path / "recipe.yaml").read_text())
    r_big = yaml.safe_load((big.path / "recipe.yaml").read_text())
    for key in STATED["grpo"]:
        assert key in r_tiny and key in r_big, key
    # the domain's own values win over any preset; the preset fills what the domain leaves out
    assert r_tiny["learning_rate"] == r_big["learning_rate"] == 5.0e-4  # toy-arithmetic sets it
    assert r_big["max_steps"] == 10 and r_big["bf16"] is True and r_tiny["bf16"] is False
    assert r_big["gradient_accumulation_steps"] == 8 and r_tiny["gradient_accumulation_steps"] == 1
    assert big.job.preset["size"]["size_class"] == "8b" and tiny.job.preset["size"]["size_class"] == "tiny"
    assert big.job.preset["sources"]["max_steps"] == "--set"
    readme = (big.path / "README.md").read_text()
    assert "size class `8b`" in readme and "| `max_steps` | `10` | --set |" in readme


# -- dry run, messages ------------------------------------------------------------------------------------

def test_dry_run_writes_nothing_and_shows_plan_and_launch(env, tmp_path: Path):  # noqa: F811
    from graduation.service.jobs import plan_job

    root, db = env
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="warm")  # verifiers validated once, first
    before = db_state(db)
    jobs_before = sorted(p.name for p in (root / "registry" / "jobs").iterdir())
    result = plan_job(db, root, "toy-arithmetic", mode="grpo", target="slurm", dry_run=True,
                      model="Qwen2.5-7B-Instruct")
    assert result.job is None
    plan = result.dry_run
    assert plan["allowed"] and plan["action"] == "train:grpo" and plan["size"]["size_class"] == "8b"
    assert plan["launch"] == ["sbatch --chdir registry/jobs/<job> registry/jobs/<job>/slurm.sbatch"]
    assert plan["hyperparameters"]["learning_rate"] == 5.0e-4 and plan["sources"]["learning_rate"] == "domain"
    assert "domains/data/toy-arithmetic/eval.jsonl" in plan["bundle"]["project"]  # what the bundle would carry
    assert db_state(db) == before
    assert sorted(p.name for p in (root / "registry" / "jobs").iterdir()) == jobs_before


def db_state(db) -> tuple:
    from sqlalchemy import text

    with db.read() as session:
        return tuple(session.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one()
                     for t in ("evidence", "audit_log", "jobs", "domain_versions"))


def test_each_target_prints_its_own_launch_command(tmp_path: Path):
    from typer.testing import CliRunner

    from graduation.cli import app
    from tests.test_jobs import make_project, register
    from graduation.store import Database

    root = make_project(tmp_path / "proj")
    url = f"sqlite:///{root / 'registry' / 'registry.db'}"
    db = Database(url)
    register(db, root)
    db.dispose()
    runner = CliRunner()
    expected = {"local": "registry jobs run", "slurm": "sbatch --chdir registry/jobs/", "kubernetes": "kubectl apply -f",
                "accelerate": "launch.sh zero3"}
    for target, needle in expected.items():
        out = runner.invoke(app, ["--project", str(root), "--db", url, "jobs", "generate", "toy-arithmetic",
                                  "--mode", "grpo", "--target", target, "--name", f"job-{target}"])
        assert out.exit_code == 0, out.output
        launch = [line for line in out.output.splitlines() if "launch (" in line]
        assert launch and needle in launch[0], (target, out.output)
    out = runner.invoke(app, ["--project", str(root), "--db", url, "jobs", "generate", "toy-arithmetic", "--mode",
                              "grpo", "--dry-run", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["writes"] == "nothing (dry run)"
    out = runner.invoke(app, ["--project", str(root), "--db", url, "jobs", "generate", "toy-arithmetic",
                              "--set", "oops"])
    assert out.exit_code == 2 and "--set" in out.output
    out = runner.invoke(app, ["--project", str(root), "--db", url, "jobs", "generate", "toy-arithmetic",
                              "--report-to", "myspace"])
    assert out.exit_code == 2 and "--report-to" in out.output


def test_auto_refusal_names_the_mode_that_is_allowed():
    from types import SimpleNamespace

    from graduation.jobs.generate import Approval
    from graduation.service.jobs import refusal_hint

    decision = SimpleNamespace(domain="d", phase="graduated", actions={
        "train:sft": SimpleNamespace(allowed=False), "train:grpo": SimpleNamespace(allowed=True)})
    denied = Approval(False, ["data_clean: golden_hour_sun in 40% of rows"], "id", "train:sft", "graduated")
    hinted = refusal_hint(denied, "auto", "sft", decision)
    assert hinted.reasons[-1] == ("hint: train:grpo is allowed in phase graduated: registry jobs generate d "
                                  "--mode grpo")
    assert refusal_hint(denied, "sft", "sft", decision) is denied  # an explicit mode is not second-guessed
    decision.actions["train:grpo"].allowed = False
    assert refusal_hint(denied, "auto", "sft", decision) is denied  # nothing else is allowed: no hint


# -- Kubernetes and the image ---------------------------------------------------------------------------

# The fields of Kubeflow Trainer v2's TrainJob (trainer.kubeflow.org/v1alpha1) that jobs write, transcribed
# from the CRD's openAPIV3Schema; additionalProperties: false so a misspelt or misplaced field fails.
_ENV = {"type": "array", "items": {"type": "object", "required": ["name"], "additionalProperties": False,
                                   "properties": {"name": {"type": "string"}, "value": {"type": "string"},
                                                  "valueFrom": {"type": "object"}}}}
_CONTAINER = {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
    "name": {"type": "string"}, "image": {"type": "string"}, "command": {"type": "array", "items": {"type": "string"}},
    "args": {"type": "array", "items": {"type": "string"}}, "env": _ENV}}


def _nest(*keys: str, leaf: dict) -> dict:
    schema = leaf
    for key in reversed(keys):
        schema = {"type": "object", "additionalProperties": False, "properties": {key: schema}}
    return schema


TRAINJOB_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "trainer.kubeflow.org/v1alpha1"}, "kind": {"const": "TrainJob"},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}}}},
        "spec": {"type": "object", "required": ["runtimeRef"], "additionalProperties": False, "properties": {
            "runtimeRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                           "properties": {"name": {"type": "string"}, "apiGroup": {"type": "string"},
                                          "kind": {"type": "string"}}},
            "trainer": {"type": "object", "additionalProperties": False, "properties": {
                "args": {"type": "array", "items": {"type": "string"}},
                "command": {"type": "array", "items": {"type": "string"}}, "env": _ENV,
                "image": {"type": "string"}, "numNodes": {"type": "integer", "minimum": 1},
                "numProcPerNode": {}, "resourcesPerNode": {"type": "object"}}},
            "runtimePatches": {"type": "array", "items": {
                "type": "object", "required": ["manager"], "additionalProperties": False, "properties": {
                    "manager": {"type": "string"}, "time": {"type": "string"},
                    "trainingRuntimeSpec": _nest("template", "spec", leaf={
                        "type": "object", "additionalProperties": False, "properties": {"replicatedJobs": {
                            "type": "array", "items": {
                                "type": "object", "required": ["name"], "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "template": _nest(
                                    "spec", "template", "spec", leaf={
                                        "type": "object", "additionalProperties": False, "properties": {
                                            "initContainers": {"type": "array", "items": _CONTAINER},
                                            "containers": {"type": "array", "items": _CONTAINER}}})}}}}})}}}}},
    },
}


def test_trainjob_validates_and_its_init_container_checks_the_decision(env):  # noqa: F811
    import jsonschema

    from graduation.service.jobs import plan_job

    root, db = env
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", target="kubernetes", name="k8s-job",
                   cluster=__import__("graduation.jobs.model", fromlist=["ClusterPin"]).ClusterPin(
                       nodes=2, image="example.org/team/trl:1")).job
    manifest = yaml.safe_load((job.path / "trainjob.yaml").read_text())
    jsonschema.validate(manifest, TRAINJOB_SCHEMA)
    broken = json.loads(json.dumps(manifest))
    broken["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["spec"]["initContainer"] = []  # misspelt: the schema must catch it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, TRAINJOB_SCHEMA)
    init = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"]["spec"]["template"]["spec"]["initContainers"][0]
    assert "jobs run k8s-job --check" in init["args"][0] and init["image"] == "example.org/team/trl:1"
    assert {"name": "REGISTRY_DB_URL", "valueFrom": {"secretKeyRef": {"name": "graduation-registry",
                                                                      "key": "url"}}} in init["env"]
    assert "jobs run k8s-job --check --bundle ." in init["args"][0]
    dockerfile = (job.path / "Dockerfile").read_text()
    # the image is built with the job directory alone as its context: the bundle is self-contained
    assert "COPY . /workspace/job/" in dockerfile and "docker build -t IMAGE registry/jobs/k8s-job" in dockerfile
    assert manifest["spec"]["trainer"]["args"][0].startswith("cd /workspace/job && registry jobs run k8s-job "
                                                             "--check --bundle . && exec accelerate launch")
    assert str(root) not in (job.path / "trainjob.yaml").read_text()
    for line in dockerfile.splitlines():  # every COPY source exists relative to the job directory (the context)
        if line.startswith("COPY "):
            assert (job.path / line.split()[1]).exists(), line


# -- prompts as the model sees them --------------------------------------------------------------------

TEMPLATED = """\
domain: toy-arithmetic
title: Sums with a template
risk: low
owners: [ml@example.org]
task:
  prompt_field: prompt
  answer_field: answer
  id_field: id
  system_prompt: "Answer with the number only."
  template: "Add: {{ prompt }}"
ground_truth:
  - {name: sums-train, path: data/toy-arithmetic/train.jsonl, provenance: expert, split: train}
  - {name: sums-held-out, path: data/toy-arithmetic/eval.jsonl, provenance: expert, split: eval}
verifiers:
  - {name: sum-value, kind: numeric, role: substance, options: {abs_tol: 0, rel_tol: 0, last_number_fallback: false}}
training:
  base_model: tiny:arithmetic
  grpo: {num_generations: 4, per_device_train_batch_size: 8, max_completion_length: 4, max_steps: 2}
"""


def test_template_reaches_training_rewards_and_evaluation_identically(env, monkeypatch):  # noqa: F811
    pytest.importorskip("trl")
    from graduation.service.jobs import plan_job
    from graduation.prompts import render_prompt
    from graduation.spec import TaskSpec
    from graduation.training import runner

    root, db = env
    (root / "domains" / "toy-arithmetic.yaml").write_text(TEMPLATED)
    from tests.test_jobs import register

    register(db, root)
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="templated").job
    task = TaskSpec(prompt_field="prompt", answer_field="answer", system_prompt="Answer with the number only.",
                    template="Add: {{ prompt }}")
    train = [json.loads(line) for line in (job.path / "data" / "train.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (job.path / "data" / "eval.jsonl").read_text().splitlines()]
    assert train[0]["prompt"] == "Answer with the number only.\n\nAdd: " + train[0]["source_prompt"]
    assert all(r["prompt"] == render_prompt(task, {"prompt": r["source_prompt"]}) for r in train + evals)
    # training: the trainer's dataset rows carry the same text (TRL hands it to the reward functions too)
    spec = runner.RunSpec(mode="grpo", model="m", output_dir=Path("."), train_rows=train)
    assert [r["prompt"] for r in runner.trainer_rows(spec)] == [r["prompt"] for r in train]
    # evaluation: the model is asked the same text, and the round is matched to ground truth by the raw prompt
    seen: list = []

    def fake_generate(model, tokenizer, prompts, **kw):
        seen.extend(prompts)
        return [["7"] for _ in prompts]

    monkeypatch.setattr(runner, "generate", fake_generate)
    answered = runner.answer_rows(None, None, evals, prompt_field="prompt", answer_field="answer", id_field="id",
                                  samples=0, temperature=1.0, max_new_tokens=4)
    assert seen == [r["prompt"] for r in evals]
    assert [a["source_prompt"] for a in answered] == [r["source_prompt"] for r in evals]


def test_chat_prompts_are_messages_and_use_the_chat_template():
    pytest.importorskip("trl")
    from graduation.prompts import render_prompt
    from graduation.spec import TaskSpec
    from graduation.training import runner

    task = TaskSpec(system_prompt="Be exact.", template="Schema: {{ schema }}\nQ: {{ prompt }}", chat=True)
    messages = render_prompt(task, {"prompt": "how many?", "schema": "t(a int)"})
    assert messages == [{"role": "system", "content": "Be exact."},
                        {"role": "user", "content": "Schema: t(a int)\nQ: how many?"}]

    class Tok:
        chat_template = "x"

        def apply_chat_template(self, msgs, tokenize, add_generation_prompt):
            assert tokenize is False and add_generation_prompt is True
            return "|".join(f"{m['role']}:{m['content']}" for m in msgs) + "|assistant:"

    assert runner.prompt_text(Tok(), messages) == "system:Be exact.|user:Schema: t(a int)\nQ: how many?|assistant:"
    sft = runner.RunSpec(mode="sft", model="m", output_dir=Path("."),
                         train_rows=[{"prompt": messages, "completion": "3"}])
    assert runner.trainer_rows(sft)[0]["completion"] == [{"role": "assistant", "content": "3"}]
    Tok.chat_template = None
    with pytest.raises(runner.ConfigError, match="no chat template"):
        runner.prompt_text(Tok(), messages)
    with pytest.raises(ValueError, match="schema"):
        render_prompt(task, {"prompt": "no schema here"})


def test_broken_template_is_a_located_error(tmp_path: Path):
    from graduation.errors import SpecError
    from graduation.spec import load_domain

    path = tmp_path / "domains" / "d.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(textwrap.dedent("""\
        domain: d
        title: D
        risk: low
        owners: [a@example.org]
        task:
          template: "{{ prompt "
        """))
    with pytest.raises(SpecError) as err:
        load_domain(path, tmp_path)
    assert "d.yaml:6" in str(err.value) and "task.template" in str(err.value)


def test_plain_domains_keep_their_hashes():
    """Prompt settings left at their defaults are not hashed: existing registries keep their evidence."""
    from graduation.spec import TaskSpec

    assert TaskSpec().canonical() == {"prompt_field": "prompt", "answer_field": "answer", "output_field": "output",
                                      "id_field": None}
    assert "template" in TaskSpec(template="{{ prompt }}").canonical()


# -- runs: no learning signal, LoRA ----------------------------------------------------------------------

def small_tiny_base(root: Path) -> None:
    """A smaller tiny base than the demo's (as in test_jobs), so that a run takes seconds."""
    from graduation.training import models
    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base

    build_tiny_base(models.tiny_dir(root, "arithmetic"), arithmetic_corpus(2000, max_operand=9),
                    TinyConfig(hidden_size=48, intermediate_size=96, pretrain_steps=60))


def test_flat_reward_detection():
    from graduation.training.runner import flat_reward

    log = [{"step": s, "reward": 0.0} for s in range(2, 22, 2)]
    assert flat_reward(log, 6) == 0.0
    assert flat_reward(log[:2], 6) is None  # not enough steps logged yet
    moving = log[:-1] + [{"step": 20, "reward": 0.25}]
    assert flat_reward(moving, 6) is None
    assert flat_reward([{"step": 5, "loss": 1.0}], 2) is None


IMPOSSIBLE = "\n".join(line for line in TEMPLATED.splitlines()
                       if "system_prompt" not in line and "template:" not in line) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("samples", [2, 0])
def test_reward_stuck_at_zero_stops_with_no_learning_signal(env, samples):  # noqa: F811
    pytest.importorskip("trl")
    from graduation.errors import TrainingStopped
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job
    from graduation.store.jobs import get_job
    from tests.test_jobs import register

    root, db = env
    small_tiny_base(root)
    # every reference is a 9-digit number: a 4-token completion can never reach it, so every reward is 0
    for split in ("train", "eval"):
        path = root / "domains" / "data" / "toy-arithmetic" / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "answer": str(123456789 + i)}) + "\n" for i, r in enumerate(rows)))
    (root / "domains" / "toy-arithmetic.yaml").write_text(IMPOSSIBLE)
    register(db, root)
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="stuck",
             overrides={"max_steps": 40, "logging_steps": 2, "no_signal_steps": 6, "torch_threads": 1,
                        "eval_every_steps": 0, "eval_samples": samples})
    with pytest.raises(TrainingStopped, match="no learning signal") as stopped:
        run_job(db, root, "stuck", progress=False)
    assert stopped.value.exit_code == 1  # the CLI exits 1: the run failed
    with db.read() as session:
        row = get_job(session, "stuck")
    detail = json.loads(row.detail_json)
    assert row.state == "failed" and "no learning signal" in detail["error"]
    assert detail["steps"] < 40 and "no learning signal" in detail["rounds"][-1]["stopped"]
    from graduation.store.evidence import list_evidence

    with db.read() as session:
        rounds = [e for e in list_evidence(session, "toy-arithmetic") if e.kind == "training_round"]
    if samples:  # sampled answers differ: the stop round is new evidence, and its record says why
        assert rounds and "no learning signal" in (rounds[-1].record.stopped or "")
    else:  # unchanged weights answering greedily repeat round 0: one file is one round, so it is not recorded
        assert len(rounds) == 1 and detail["rounds"][-1]["recorded"] is False


@pytest.mark.slow
def test_lora_run_of_the_tiny_model_saves_an_adapter_with_its_base(env):  # noqa: F811
    pytest.importorskip("peft")
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job

    root, db = env
    small_tiny_base(root)
    graduate(db, root)
    job = plan_job(db, root, "toy-arithmetic", mode="sft", name="lora-sft", peft="lora", merge=True,
                   overrides={"num_train_epochs": 1, "lora_r": 4, "torch_threads": 1}).job
    recipe = yaml.safe_load((job.path / "recipe.yaml").read_text())
    assert recipe["use_peft"] is True and recipe["lora_r"] == 4 and recipe["lora_target_modules"] == "all-linear"
    outcome = run_job(db, root, "lora-sft", progress=False)
    assert outcome.state == "succeeded" and outcome.adapter["base"] == "tiny:arithmetic"
    adapter = Path(outcome.adapter["adapter_path"])
    assert (adapter / "adapter_config.json").is_file()
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 4
    merged = Path(outcome.adapter["merged_path"])
    assert (merged / "config.json").is_file() and not (merged / "adapter_config.json").exists()
