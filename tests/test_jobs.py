"""Generated jobs: refused unless allowed, complete and valid files (YAML parses, shell passes bash -n and
shellcheck), nothing injectable, refusal at launch when the decision changed, evidence rounds in the registry."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from graduation.errors import InputError
from graduation.jobs.generate import JobRefused
from graduation.jobs.model import ClusterPin
from graduation.records import EvalRecord
from graduation.store import Database

REPO = Path(__file__).resolve().parent.parent
SHELL_FILES = ("launch.sh", "slurm.sbatch")
YAML_FILES = ("job.yaml", "recipe.yaml", "trainjob.yaml", "accelerate/single_gpu.yaml", "accelerate/multi_gpu.yaml",
              "accelerate/zero3.yaml", "accelerate/fsdp2.yaml")


def make_project(root: Path) -> Path:
    (root / "domains" / "data").mkdir(parents=True)
    (root / "policies").mkdir()
    shutil.copy(REPO / "domains" / "toy-arithmetic.yaml", root / "domains")
    shutil.copytree(REPO / "domains" / "data" / "toy-arithmetic", root / "domains" / "data" / "toy-arithmetic")
    return root


def register(db: Database, root: Path) -> None:
    from graduation.service.project import load_many
    from graduation.store.domains import register as reg

    loaded = load_many([root / "domains"], root)
    with db.write() as session:
        for item in loaded:
            reg(session, item)


@pytest.fixture
def env(tmp_path: Path):
    root = make_project(tmp_path / "proj")
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    register(db, root)
    yield root, db
    db.dispose()


def graduate(db: Database, root: Path, passed: int = 160, n: int = 160, model: str | None = None) -> None:
    """Record two training rounds that meet the low-risk bar (what a GRPO job's rounds do) for a registered model."""
    from graduation.evidence import wilson_lower
    from graduation.store.evidence import add_evidence
    from graduation.store.models import resolve_model
    from tests.modelreg import registered

    ref = model or registered(db, "m")
    rate = passed / n
    with db.write() as session:
        info = resolve_model(session, ref)
        for r in (1, 2):  # two qualifying rounds: the first makes candidate, the second graduates (issue 12)
            record = EvalRecord(model=info.ref, round=r, n=n, passed=passed, pass_rate=rate,
                                wilson_lower=wilson_lower(passed, n), substance_pass_rate=rate, format_pass_rate=1.0,
                                shape_gap=1.0 - rate, job="j", step=10 * r, prompts=40, prompt_pass_rate=rate,
                                eval_prompts=40, coverage=1.0)
            add_evidence(session, "toy-arithmetic", "training_round", record, round=r, model_id=info.id)


def job_rows(db: Database) -> list:
    from graduation.store.jobs import list_jobs

    with db.read() as session:
        return list_jobs(session)


def test_grpo_job_directory_is_complete_and_valid(env):
    from graduation.service.jobs import plan_job

    root, db = env
    result = plan_job(db, root, "toy-arithmetic", mode="auto", target="local", name="first")
    job_dir = root / "registry" / "jobs" / "first"
    assert result.job.path == job_dir and result.job.job.mode == "grpo"  # discovery: auto means GRPO
    for rel in YAML_FILES:
        assert isinstance(yaml.safe_load((job_dir / rel).read_text()), dict), rel
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert job["decision"]["allowed"] and job["decision"]["action"] == "train:grpo"
    assert job["domain"]["version"] == 1 and len(job["domain"]["content_hash"]) == 64
    assert job["decision"]["policy_digest"] and job["datasets"]["train"]["rows"] == 60
    assert job["datasets"]["eval"]["rows"] == 40 and len(job["datasets"]["train"]["sha256"]) == 64
    recipe = yaml.safe_load((job_dir / "recipe.yaml").read_text())
    assert recipe["reward_funcs"] == ["rewards.substance_sum_value", "rewards.format_integer_shape"]
    assert recipe["reward_weights"] == [1.0, 0.1] and "eval_samples" not in recipe
    # the tiny model is not built yet: `jobs run` builds it into the job's own output/ (a relative path)
    assert recipe["model_name_or_path"] == "output/base-model"
    # the bundle carries the domain's files as registered and the policy that approved the job
    assert (job_dir / "project" / "domains" / "data" / "toy-arithmetic" / "eval.jsonl").read_bytes() == \
        (root / "domains" / "data" / "toy-arithmetic" / "eval.jsonl").read_bytes()
    assert job["policy_file"] == "project/policies/default.yaml" and (job_dir / job["policy_file"]).is_file()
    assert "project_root" not in job or job["project_root"] is None
    compile((job_dir / "rewards.py").read_text(), "rewards.py", "exec")
    for rel in SHELL_FILES:
        assert (job_dir / rel).stat().st_mode & stat.S_IXUSR
    assert [r.id for r in job_rows(db)] == ["first"] and job_rows(db)[0].state == "generated"
    assert not [p for p in (root / "registry" / "jobs").iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_reward_module_builds_the_domain_verifiers(env, monkeypatch):
    from graduation.service.jobs import plan_job

    root, db = env
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="rw")
    from graduation.jobs.rewards import job_rewards

    funcs = job_rewards(root / "registry" / "jobs" / "rw")
    assert sorted(funcs) == ["format_integer_shape", "substance_sum_value"]
    assert funcs["substance_sum_value"](["2+2="], ["4"], answer=["4"]) == [1.0]
    assert funcs["substance_sum_value"](["2+2="], ["-4"], answer=["4"]) == [0.0]


def shell_check(path: Path) -> None:
    subprocess.run(["bash", "-n", str(path)], check=True)


def lint(*paths: Path) -> None:
    """shellcheck at its strictest level, called at the end of a test. Without shellcheck the test is reported
    as skipped with the reason (``make test`` installs shellcheck, or stops and says why)."""
    if not shutil.which("shellcheck"):
        if os.environ.get("GRADUATION_REQUIRE_SHELLCHECK"):
            pytest.fail("shellcheck is required (GRADUATION_REQUIRE_SHELLCHECK is set) but not installed")
        pytest.skip("shellcheck is not installed: the generated shell files passed bash -n only")
    for path in paths:
        out = subprocess.run(["shellcheck", "-x", "-S", "style", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("vllm", [False, True])
def test_realistic_7b_cluster_files(env, vllm: bool):
    from graduation.service.jobs import plan_job

    root, db = env
    graduate(db, root)  # the files do not depend on the phase; a GRPO job is allowed either way
    result = plan_job(db, root, "toy-arithmetic", mode="grpo", target="slurm", name=f"big-{int(vllm)}",
                      model="Qwen/Qwen2.5-7B-Instruct", cluster=ClusterPin(nodes=2, gpus_per_node=8, vllm=vllm))
    job_dir = result.job.path
    for rel in SHELL_FILES:
        shell_check(job_dir / rel)
    slurm = (job_dir / "slurm.sbatch").read_text()
    assert f"#SBATCH --nodes={3 if vllm else 2}" in slurm and "#SBATCH --gpus-per-node=8" in slurm
    assert ("trl vllm-serve" in slurm) == vllm and "accelerate/zero3.yaml" in slurm
    assert "jobs run \"$JOB_ID\" --check" in slurm  # the decision is re-checked before anything starts
    trainjob = yaml.safe_load((job_dir / "trainjob.yaml").read_text())
    assert trainjob["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and trainjob["kind"] == "TrainJob"
    assert trainjob["spec"]["trainer"]["numNodes"] == 2
    assert trainjob["spec"]["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 8
    script = trainjob["spec"]["trainer"]["args"][0]
    (job_dir / "trainjob-script.sh").write_text("#!/usr/bin/env bash\n" + script + "\n")
    shell_check(job_dir / "trainjob-script.sh")
    zero3 = yaml.safe_load((job_dir / "accelerate" / "zero3.yaml").read_text())
    assert zero3["distributed_type"] == "DEEPSPEED" and zero3["deepspeed_config"]["zero_stage"] == 3
    fsdp = yaml.safe_load((job_dir / "accelerate" / "fsdp2.yaml").read_text())
    assert fsdp["fsdp_config"]["fsdp_version"] == 2
    assert yaml.safe_load((job_dir / "recipe.yaml").read_text())["model_name_or_path"] == "Qwen/Qwen2.5-7B-Instruct"
    lint(*(job_dir / rel for rel in SHELL_FILES), job_dir / "trainjob-script.sh")


def test_shell_metacharacters_cannot_inject(tmp_path: Path):
    """A project path full of shell syntax reaches launch.sh as one literal argument."""
    from graduation.service.jobs import plan_job

    root = make_project(tmp_path / "p $(touch PWNED) `touch PWNED2` 'q' \"d\"; touch PWNED3")
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    register(db, root)
    result = plan_job(db, root, "toy-arithmetic", name="inj")
    job_dir = result.job.path
    for rel in SHELL_FILES:
        shell_check(job_dir / rel)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "registry"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    fake.chmod(0o755)
    out = tmp_path / "args.txt"
    subprocess.run(["bash", str(job_dir / "launch.sh"), "local"], check=True, cwd=tmp_path,
                   env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARGS_OUT": str(out)})
    assert out.read_text().splitlines() == ["jobs", "run", "inj", "--bundle", str(job_dir.resolve())]
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
    db.dispose()
    lint(*(job_dir / rel for rel in SHELL_FILES))


@pytest.mark.parametrize("bad", ["x; rm -rf /", "$(id)", "UPPER", "-dash", "a" * 97, "a/b", "../up"])
def test_bad_job_names_are_refused_before_anything_is_written(env, bad: str):
    from graduation.service.jobs import plan_job

    root, db = env
    with pytest.raises(InputError, match="job name"):
        plan_job(db, root, "toy-arithmetic", name=bad)
    assert not job_rows(db)
    assert not (root / "registry" / "jobs").exists() or not any((root / "registry" / "jobs").iterdir())


def test_denied_mode_writes_nothing_and_names_the_reason(env):
    from graduation.service.jobs import plan_job

    root, db = env
    with pytest.raises(JobRefused) as exc:
        plan_job(db, root, "toy-arithmetic", mode="sft", name="early")
    assert exc.value.exit_code == 1
    assert "train:sft is denied for toy-arithmetic (phase discovery" in str(exc.value)
    assert exc.value.reasons  # what would change it: the unmet criteria
    assert not job_rows(db) and not (root / "registry" / "jobs" / "early").exists()


def test_sft_from_ground_truth_after_graduation_carries_lineage(env):
    from graduation.service.jobs import plan_job

    root, db = env
    graduate(db, root)
    result = plan_job(db, root, "toy-arithmetic", mode="auto", name="sft-gt")
    assert result.job.job.mode == "sft" and result.decision.phase == "graduated"
    rows = [json.loads(line) for line in (result.job.path / "data" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(r["completion"] == r["answer"] for r in rows)
    lineage = rows[0]["lineage"]
    assert lineage["source"] == {"kind": "ground_truth", "name": "sums-train", "provenance": "expert",
                                 "path": "domains/data/toy-arithmetic/train.jsonl"}
    assert lineage["decision_id"] == result.job.job.decision.id
    assert {v["name"] for v in lineage["verifiers"]} == {"sum-value", "integer-shape"}
    assert not (result.job.path / "rewards.py").exists()


def test_run_refuses_when_the_domain_changed(env):
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job

    root, db = env
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="stale")
    path = root / "domains" / "toy-arithmetic.yaml"
    path.write_text(path.read_text().replace("risk: low", "risk: medium"))
    register(db, root)
    with pytest.raises(JobRefused, match="changed since job stale was generated"):
        run_job(db, root, "stale")
    assert job_rows(db)[0].state == "refused"


def test_run_refuses_when_the_policy_no_longer_allows_the_mode(env):
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job

    root, db = env
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="pol")
    strict = root / "policies" / "strict.yaml"
    default = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    default["policy"] = "strict"
    default["rules"].append({"id": "freeze-training", "effect": "forbid", "actions": ["train:grpo"], "when": "true",
                             "reason": "training is frozen"})
    strict.write_text(yaml.safe_dump(default))
    with pytest.raises(JobRefused, match="no longer allowed") as exc:
        run_job(db, root, "pol", policy_path=strict)
    assert any("training is frozen" in r for r in exc.value.reasons)
    assert run_job(db, root, "pol", check_only=True).decision_id  # the default policy still allows it


def test_run_refuses_when_its_data_was_modified(env):
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job

    root, db = env
    result = plan_job(db, root, "toy-arithmetic", mode="grpo", name="tamper")
    with (result.job.path / "data" / "train.jsonl").open("a") as fh:
        fh.write('{"prompt": "1+1=", "answer": "3"}\n')
    with pytest.raises(JobRefused, match="was modified"):
        run_job(db, root, "tamper", check_only=True)


def test_cli_generate_list_show_and_refusal(env, tmp_path: Path):
    from typer.testing import CliRunner

    from graduation.cli import app

    root, db = env
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, ["--project", str(root), "--db", db.url, *args], catch_exceptions=False)

    refused = cli("jobs", "generate", "toy-arithmetic", "--mode", "sft")
    assert refused.exit_code == 1 and "train:sft is denied" in refused.output
    bad = cli("jobs", "generate", "toy-arithmetic", "--target", "mars")
    assert bad.exit_code == 2 and "--target 'mars'" in bad.output
    made = cli("jobs", "generate", "toy-arithmetic", "--json", "--name", "via-cli")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["job"] == "via-cli"
    listed = json.loads(cli("jobs", "list", "--json").output)
    assert [(j["id"], j["state"], j["mode"]) for j in listed] == [("via-cli", "generated", "grpo")]
    shown = cli("jobs", "show", "via-cli", "--json")
    assert json.loads(shown.output)["decision_id"] == listed[0]["decision_id"]
    missing = cli("jobs", "show", "via-clj")
    assert missing.exit_code == 2 and "did you mean 'via-cli'" in missing.output


@pytest.mark.slow
def test_grpo_job_run_writes_training_rounds_then_sft_from_it(env):
    """A real (short) GRPO run: every round lands in the registry; then SFT crystallised from its checkpoint."""
    pytest.importorskip("trl")
    from graduation.service.launch import run_job
    from graduation.service.jobs import plan_job
    from graduation.store.evidence import list_evidence
    from graduation.training import models

    root, db = env
    # a smaller tiny base than the demo's, so that the test takes seconds
    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base

    build_tiny_base(models.tiny_dir(root, "arithmetic"), arithmetic_corpus(2000, max_operand=9),
                    TinyConfig(hidden_size=48, intermediate_size=96, pretrain_steps=60))
    path = root / "domains" / "toy-arithmetic.yaml"
    text = path.read_text().replace("    per_device_train_batch_size: 128\n", "    per_device_train_batch_size: 16\n")
    text = text.replace("    max_steps: 200\n", "    max_steps: 4\n").replace("    eval_every_steps: 50\n",
                                                                           "    eval_every_steps: 2\n")
    path.write_text(text)
    register(db, root)
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="short")
    outcome = run_job(db, root, "short", progress=False)
    assert outcome.state == "succeeded" and outcome.steps == 4
    assert [(r["round"], r["step"], r["model"]) for r in outcome.rounds] == \
        [(0, 0, "short@1"), (1, 2, "short@2"), (2, 4, "short@3")]  # every checkpoint registered by its digest
    assert outcome.model == "short@3"  # the saved model is the last round's checkpoint, byte for byte
    assert set(outcome.reward_means) == {"substance.sum-value", "format.integer-shape"}
    with db.read() as session:
        rounds = [e for e in list_evidence(session, "toy-arithmetic") if e.kind == "training_round"]
    assert [(e.model_key, e.round, e.record.job, e.record.step, e.record.n, e.record.origin) for e in rounds] == \
        [("short@1", 1, "short", 0, 160, "generated"), ("short@2", 1, "short", 2, 160, "generated"),
         ("short@3", 1, "short", 4, 160, "generated")]
    with db.read() as session:
        from graduation.store.models import resolve_model

        lineage = resolve_model(session, "short@3").lineage
    assert lineage["job"] == "short" and lineage["base_model"] == "tiny:arithmetic" and lineage["step"] == 4
    assert lineage["decision"] and lineage["policy_digest"] and set(lineage["datasets"]) == {"train", "eval"}
    assert job_rows(db)[0].state == "succeeded"
    # the recipe and the reward module work with TRL's own script, as `trl grpo --config recipe.yaml` runs it
    import sys

    trl_run = subprocess.run([sys.executable, "-m", "trl.scripts.grpo", "--config", "recipe.yaml", "--max_steps", "1",
                              "--bf16", "false", "--gradient_checkpointing", "false", "--use_cpu", "true",
                              "--per_device_train_batch_size", "16", "--output_dir", str(root / "trl-out")],
                             cwd=root / "registry" / "jobs" / "short", capture_output=True, text=True, timeout=300,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert trl_run.returncode == 0, trl_run.stderr[-2000:]
    assert "rewards/substance.sum-value/mean" in trl_run.stdout + trl_run.stderr
    graduate(db, root, model="short@3")  # the short run cannot graduate its checkpoint; the demo's full run does
    result = plan_job(db, root, "toy-arithmetic", mode="sft", from_job="short", name="crystal")
    rows = [json.loads(line) for line in (result.job.path / "data" / "train.jsonl").read_text().splitlines()]
    assert result.crystallised.kept == len(rows)
    assert all(r["lineage"]["source"]["job"] == "short" for r in rows)
    assert all(r["lineage"]["decision_id"] == result.job.job.decision.id for r in rows)
    # the checkpoint it continues travels in the bundle, and no file names the project's path
    assert result.job.job.model == "short@3" and (result.job.path / "model" / "config.json").is_file()
    assert not [p for p in result.job.path.rglob("*") if p.is_file() and str(root).encode() in p.read_bytes()]
    with db.read() as session:
        assert any(e.kind == "data_audit" for e in list_evidence(session, "toy-arithmetic"))
    if rows:
        sft = run_job(db, root, "crystal", progress=False, max_steps=2)
        assert sft.state == "succeeded" and sft.rounds[-1]["step"] == 2


@pytest.mark.parametrize("error, state", [(KeyboardInterrupt, "interrupted"), (RuntimeError("boom"), "failed")])
def test_interrupted_or_failed_run_leaves_the_registry_consistent(env, monkeypatch, error, state):
    from graduation.service import launch as execute
    from graduation.service.jobs import plan_job
    from graduation.store.jobs import job_dict

    root, db = env
    plan_job(db, root, "toy-arithmetic", mode="grpo", name="cut")

    def train(db_, root_, job, job_dir, outcome, **kw):
        outcome.rounds.append({"round": 0, "step": 0})
        raise error

    monkeypatch.setattr(execute, "_train", train)
    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        execute.run_job(db, root, "cut", progress=False)
    row = job_dict(job_rows(db)[0])
    assert row["state"] == state and row["detail"]["rounds"] == [{"round": 0, "step": 0}]
    if state == "failed":
        assert "boom" in row["detail"]["error"]


def test_sft_refused_on_data_carrying_an_invented_symbol(tmp_path: Path):
    """The hamiltonian example: its distilled set carries golden_hour_sun; SFT is refused, naming it."""
    from graduation.service.data_audit import audit_data
    from graduation.service.jobs import plan_job

    root = tmp_path / "ham"
    shutil.copytree(REPO / "domains", root / "domains")
    (root / "policies").mkdir()
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    from graduation.service.project import load_project_domain
    from graduation.store.domains import register as reg

    with db.write() as session:
        reg(session, load_project_domain(root / "domains" / "hamiltonian-mechanics.yaml", root))
    audit_data(db, root, "hamiltonian-mechanics", root / "domains" / "data" / "hamiltonian-mechanics" / "distilled.jsonl")
    with pytest.raises(JobRefused) as exc:
        plan_job(db, root, "hamiltonian-mechanics", mode="sft")
    assert "golden_hour_sun" in str(exc.value) and "sft-unsupported-symbols" in str(exc.value)
    assert not (root / "registry" / "jobs").exists() and not job_rows(db)
    db.dispose()


def test_generating_and_listing_jobs_never_imports_torch(env):
    import sys

    root, db = env
    code = ("import sys\nfrom pathlib import Path\nfrom graduation.store import Database\n"
            "from graduation.service.jobs import plan_job\nfrom graduation.store.jobs import list_jobs\n"
            f"db = Database({db.url!r})\nplan_job(db, Path({str(root)!r}), 'toy-arithmetic', name='light')\n"
            "with db.read() as s: list_jobs(s)\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_registered_target_renders_the_files_its_launch_commands_name(env):
    import re

    from graduation.jobs.files import environment
    from graduation.jobs.model import read_job_file
    from graduation.jobs.targets import TARGETS, launch_commands
    from graduation.service.jobs import plan_job

    root, db = env
    owned: dict[str, str] = {}
    for name, target in TARGETS.items():
        result = plan_job(db, root, "toy-arithmetic", mode="grpo", target=name, name=f"t-{name}")
        job = read_job_file(result.job.path / "job.yaml")
        assert job.target == name
        mine = target.files(job, environment(), {"job_id": job.job, "mode": job.mode, "domain": job.domain.name,
                                                 "decision_id": job.decision.id, "model": job.model,
                                                 "gpus_per_node": 8, "recipe_command": "trl grpo",
                                                 "default_accelerate": target.accelerate, "default_how": "x"})
        assert mine, name
        for rel in mine:  # a target writes its own files only: no two targets write the same path
            assert owned.setdefault(rel, name) == name, (rel, owned[rel], name)
            assert (result.job.path / rel).is_file(), (name, rel)
        for command in launch_commands(name, job.job, job.cluster, "DIR"):
            for rel in re.findall(r"DIR/([\w./-]+)", command):
                assert (result.job.path / rel).is_file(), (name, command)
