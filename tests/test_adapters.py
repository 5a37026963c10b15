"""LoRA adapters and merged checkpoints are models of their own, registered with their base (NAME@V and
digest): evidence of the base never counts for the adapter nor the reverse, and a changed byte of an adapter
is an unknown artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_jobs import env, graduate  # noqa: F401  (fixtures)


def model_phase(db, root: Path, ref: str) -> tuple[str, bool]:
    """(phase, deploy:assisted allowed) of toy-arithmetic for the registered model ``ref``."""
    from graduation.policy.model import load_policy
    from graduation.service.decisions import decisions
    from graduation.store.models import resolve_model

    with db.read() as session:
        info = resolve_model(session, ref)
    found = decisions(db, load_policy(None, root), ["toy-arithmetic"], model=info)[0].decision
    return found.phase, bool(found.actions["deploy:assisted"].allowed)


def cli(db, root: Path, *args: str):
    from graduation.cli import app

    return CliRunner().invoke(app, ["--project", str(root), "--db", db.url, *args])


def fake_adapter(path: Path, base_label: str) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base_label, "r": 4}))
    (path / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 8)
    return path


def test_an_adapter_is_its_own_artifact_with_its_base(env, tmp_path: Path):  # noqa: F811
    from graduation.service.launch import register_checkpoint
    from graduation.service.jobs import plan_job
    from tests.modelreg import registered

    root, db = env
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="lora-job", peft="lora").job
    base_ref = registered(db, "tiny-base")
    with db.read() as session:
        from graduation.store.models import resolve_model

        base = resolve_model(session, base_ref)
    pin = {"model": base.ref, "digest": base.digest, "name": "tiny:arithmetic"}
    adapter = register_checkpoint(db, job.job, fake_adapter(tmp_path / "adapter", "tiny:arithmetic"), 4, base=pin)
    assert adapter.ref == "lora-job@1" and adapter.digest != base.digest
    assert adapter.lineage["kind"] == "adapter" and adapter.lineage["base"] == pin
    assert adapter.lineage["peft"]["method"] == "lora"
    shown = cli(db, root, "models", "show", adapter.ref, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["artifact"] == "adapter" and data["base"] == pin
    assert "tiny-base@1" in cli(db, root, "models", "show", adapter.ref).output
    # the base graduates on its own rounds: nothing of it counts for the adapter ...
    graduate(db, root, model=base.ref)
    assert model_phase(db, root, base.ref)[0] == "graduated"
    assert model_phase(db, root, adapter.ref) == ("discovery", False)
    # ... nor does the adapter's graduation count for the base or for the merged model
    merged = register_checkpoint(db, job.job, fake_adapter(tmp_path / "merged", "x"), 4, base=pin, adapter=adapter,
                                 name="lora-job-merged")
    assert merged.lineage["kind"] == "merged" and merged.lineage["adapter"] == {"model": adapter.ref,
                                                                               "digest": adapter.digest}
    graduate(db, root, model=adapter.ref)
    assert model_phase(db, root, adapter.ref)[0] == "graduated"
    assert model_phase(db, root, merged.ref) == ("discovery", False)
    # the adapter's files are what ships: one changed byte is an unknown artifact, denied
    shipped = Path(shutil.copytree(tmp_path / "adapter", tmp_path / "shipped"))
    ok = cli(db, root, "status", "toy-arithmetic", "--model-path", str(shipped), "--require", "deploy:sandbox")
    assert "lora-job@1" in ok.output and "no registered model" not in ok.output
    weights = shipped / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 1
    weights.write_bytes(bytes(data))
    changed = cli(db, root, "status", "toy-arithmetic", "--model-path", str(shipped), "--require", "deploy:sandbox")
    assert changed.exit_code == 1 and "no registered model" in changed.output


@pytest.mark.slow
def test_a_lora_run_registers_its_adapter_and_the_merged_model_with_their_base(env):  # noqa: F811
    pytest.importorskip("peft")
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job
    from graduation.models import manifest
    from graduation.store.models import resolve_model
    from tests.test_jobs_platform import small_tiny_base

    root, db = env
    small_tiny_base(root)
    graduate(db, root)  # SFT is allowed once the domain's data is trusted
    job = plan_job(db, root, "toy-arithmetic", mode="sft", name="lora-run", peft="lora", merge=True,
                   overrides={"num_train_epochs": 1, "lora_r": 4, "torch_threads": 1}).job
    outcome = run_job(db, root, "lora-run", progress=False, max_steps=2)
    assert outcome.state == "succeeded"
    base_digest = manifest(job.path / "model").digest  # the bundled tiny model
    with db.read() as session:
        base = resolve_model(session, base_digest)
        adapter = resolve_model(session, outcome.model)
        merged = resolve_model(session, outcome.adapter["merged"])
    assert base.ref == "tiny-arithmetic@1"
    assert adapter.lineage["kind"] == "adapter" and adapter.lineage["base"] == {
        "model": base.ref, "digest": base_digest, "name": "tiny:arithmetic"}
    assert merged.ref == "lora-run-merged@1" and merged.lineage["kind"] == "merged"
    assert merged.lineage["base"] == adapter.lineage["base"]
    assert merged.lineage["adapter"] == {"model": adapter.ref, "digest": adapter.digest}
    assert len({base.digest, adapter.digest, merged.digest}) == 3
    config = json.loads((Path(outcome.adapter["adapter_path"]) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny:arithmetic"  # a label, not this machine's path
    assert (Path(outcome.adapter["merged_path"]) / "config.json").is_file()
    # every evaluation round belongs to the adapter that answered it, never to the base
    from graduation.store.evidence import list_evidence

    with db.read() as session:
        owners = {e.model_key for e in list_evidence(session, "toy-arithmetic") if e.kind == "training_round"
                  and e.record.job == "lora-run"}
    assert owners and base.ref not in owners and all(o.startswith("lora-run@") for o in owners)
    # the registry samples the adapter itself, applied to the base its lineage pins
    sampled = cli(db, root, "evaluate", "toy-arithmetic", "--model", adapter.ref, "--generate", "--limit", "3",
                  "--max-new-tokens", "4", "--json")
    assert sampled.exit_code == 0, sampled.output
    assert json.loads(sampled.stdout)["record"]["model"] == adapter.ref
