"""Job directories are self-contained bundles: copied anywhere they run with the same result, name no path of
the project, and refuse to start when any copied file (verifier code, data, rewards, the policy) was edited or
the registry no longer allows the job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graduation.store import Database
from tests.test_jobs import lint, make_project, register, shell_check

PY_VERIFIER = """\
  - name: sum-exact
    kind: python
    role: substance
    options: {function: "checks.sums:same", files: [fixtures/note.txt]}
    description: The same sum, compared by the domain's own code.
"""


def with_python_verifier(root: Path) -> Path:
    """toy-arithmetic plus a python verifier with a local import and a declared fixture (all inside the project)."""
    (root / "checks").mkdir()
    (root / "checks" / "__init__.py").write_text("")
    (root / "checks" / "sums.py").write_text("from checks.norm import norm\n\n\ndef same(output, reference, row=None):\n"
                                             "    return norm(output) == norm(reference)\n")
    (root / "checks" / "norm.py").write_text("def norm(x):\n    return str(x).strip()\n")
    (root / "fixtures").mkdir()
    (root / "fixtures" / "note.txt").write_text("read by the verifier\n")
    path = root / "domains" / "toy-arithmetic.yaml"
    text = path.read_text()
    path.write_text(text.replace("  - name: integer-shape\n", PY_VERIFIER + "  - name: integer-shape\n"))
    return root


@pytest.fixture
def pyenv(tmp_path: Path):
    root = with_python_verifier(make_project(tmp_path / "proj"))
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    register(db, root)
    yield root, db
    db.dispose()


def cli(db, *args: str, env: dict | None = None):
    from graduation.cli import app

    return CliRunner().invoke(app, [*(["--db", db.url] if db is not None else []), *args], env=env)


def copied(job_dir: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(job_dir, where / job_dir.name))


def test_the_bundle_carries_what_the_job_reads_and_names_no_project_path(pyenv):
    from graduation.jobs.model import ClusterPin
    from graduation.service.jobs import plan_job
    from graduation.policy.model import load_policy

    root, db = pyenv
    jobs = [plan_job(db, root, "toy-arithmetic", mode="grpo", target=target, name=f"b-{target}",
                     cluster=ClusterPin(nodes=2, vllm=True)).job for target in ("local", "slurm", "kubernetes")]
    path = jobs[0].path
    for rel in ("checks/sums.py", "checks/norm.py", "checks/__init__.py", "fixtures/note.txt",
                "domains/data/toy-arithmetic/train.jsonl", "domains/data/toy-arithmetic/eval.jsonl"):
        assert (path / "project" / rel).read_bytes() == (root / rel).read_bytes(), rel
    # the policy the bundle carries has the digest the job was approved under
    assert load_policy(path / "project" / "policies" / "default.yaml", path / "project").digest == \
        jobs[0].job.decision.policy_digest
    for job in jobs:
        for needle in {str(root), str(root.resolve())}:
            hits = [p.relative_to(job.path).as_posix() for p in job.path.rglob("*")
                    if p.is_file() and needle.encode() in p.read_bytes()]
            assert not hits, (job.id, hits)
        for rel in ("launch.sh", "slurm.sbatch"):
            shell_check(job.path / rel)
    lint(*(job.path / rel for job in jobs for rel in ("launch.sh", "slurm.sbatch")))


def test_a_copied_bundle_passes_its_check_from_any_directory(pyenv, tmp_path: Path):
    from graduation.service.jobs import plan_job

    root, db = pyenv
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="away").job
    copy = copied(job.path, tmp_path / "elsewhere")
    ok = cli(db, "jobs", "run", "away", "--check", "--bundle", str(copy))
    assert ok.exit_code == 0, ok.output
    # no registry named and not in its project: refused as bad input, nothing started
    lost = cli(None, "jobs", "run", "away", "--check", "--bundle", str(copy), env={"REGISTRY_DB_URL": ""})
    assert lost.exit_code == 2 and "REGISTRY_DB_URL" in lost.output
    # in place, launch.sh finds its project's registry by itself, from any working directory
    fake_cwd = tmp_path / "cwd"
    fake_cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_DB_URL", "GRADUATION_PROJECT")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "accelerate").write_text('#!/usr/bin/env bash\necho "accelerate $PWD $*"\n')
    (fake / "accelerate").chmod(0o755)
    here = subprocess.run(["bash", str(job.path / "launch.sh"), "single_gpu"], cwd=fake_cwd, env={
        **env, "PATH": f"{fake}:{env['PATH']}"}, capture_output=True, text=True, timeout=300)
    assert here.returncode == 0, here.stderr[-2000:]
    # the check passed, then accelerate started in the job directory with the bundle's relative paths
    assert "ok away: still allowed" in here.stdout
    assert here.stdout.splitlines()[-1].startswith(f"accelerate {job.path.resolve()} launch --config_file "
                                                   "accelerate/single_gpu.yaml")
    with db.read() as session:
        from sqlalchemy import text

        contexts = [json.loads(r[0]).get("context") for r in session.execute(
            text("SELECT payload_json FROM audit_log WHERE kind = 'decision'")).all()]
    assert contexts.count("jobs run --check") >= 2


@pytest.mark.parametrize("rel, edit", [
    ("project/checks/norm.py", lambda t: t.replace("strip()", "strip() or 'x'")),  # a verifier's local import
    ("project/checks/sums.py", lambda t: t + "\n# harmless?\n"),
    ("project/fixtures/note.txt", lambda t: t + "x"),
    ("project/domains/data/toy-arithmetic/eval.jsonl",
     lambda t: t.replace('"answer": "', '"answer": "1', 1)),  # one ground-truth row
    ("rewards.py", lambda t: t + "\ndef substance_sum_value(*a, **k):\n    return [1.0] * 64\n"),
    ("project/policies/default.yaml", lambda t: t.replace("rules:", "# loosened\nrules:", 1)),
    ("data/train.jsonl", lambda t: t + '{"prompt": "1+1=", "answer": "3", "source_prompt": "1+1="}\n'),
])
def test_an_edited_file_of_a_copied_bundle_is_refused_naming_it(pyenv, tmp_path: Path, rel, edit):
    from graduation.service.jobs import plan_job

    root, db = pyenv
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="tampered").job
    copy = copied(job.path, tmp_path / "cluster")
    (copy / rel).write_text(edit((copy / rel).read_text()))
    refused = cli(db, "jobs", "run", "tampered", "--check", "--bundle", str(copy))
    assert refused.exit_code == 1, refused.output
    assert f"{rel} changed" in refused.output
    assert cli(db, "jobs", "run", "tampered", "--check").exit_code == 0  # the original is untouched


def test_a_file_added_to_a_copied_bundle_is_refused(pyenv, tmp_path: Path):
    from graduation.service.jobs import plan_job

    root, db = pyenv
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="planted").job
    copy = copied(job.path, tmp_path / "cluster")
    cache = copy / "project" / "checks" / "__pycache__"
    cache.mkdir()
    (cache / "sums.cpython-311.pyc").write_bytes(b"\x00" * 16)  # bytecode would run instead of the sealed source
    refused = cli(db, "jobs", "run", "planted", "--check", "--bundle", str(copy))
    assert refused.exit_code == 1 and "project/checks/__pycache__/sums.cpython-311.pyc was added" in refused.output
    # what a run writes (output/, logs/ at the top) is not part of the seal
    shutil.rmtree(cache)
    (copy / "output").mkdir()
    (copy / "output" / "anything.bin").write_bytes(b"x")
    assert cli(db, "jobs", "run", "planted", "--check", "--bundle", str(copy)).exit_code == 0


def test_a_copied_bundle_is_refused_when_the_registry_no_longer_allows_it(pyenv, tmp_path: Path):
    from graduation.service.jobs import plan_job

    root, db = pyenv
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="revoked").job
    copy = copied(job.path, tmp_path / "cluster")
    strict = tmp_path / "strict.yaml"
    import yaml

    policy = yaml.safe_load((job.path / "project" / "policies" / "default.yaml").read_text())
    policy["rules"].append({"id": "freeze", "effect": "forbid", "actions": ["train:grpo"], "when": "true",
                            "reason": "training is frozen"})
    strict.write_text(yaml.safe_dump(policy))
    frozen = cli(db, "jobs", "run", "revoked", "--check", "--bundle", str(copy), "--policy", str(strict))
    assert frozen.exit_code == 1 and "training is frozen" in frozen.output
    # the domain registered again with other content: the copy's pinned version is stale
    path = root / "domains" / "toy-arithmetic.yaml"
    path.write_text(path.read_text().replace("risk: low", "risk: medium"))
    register(db, root)
    stale = cli(db, "jobs", "run", "revoked", "--check", "--bundle", str(copy))
    assert stale.exit_code == 1 and "changed since job revoked was generated" in stale.output


@pytest.fixture
def outside_tmp():
    """A directory outside /tmp and the home directory (the sandbox hides those anyway): under build/ here."""
    import tempfile

    base = Path(__file__).resolve().parent.parent / "build"
    base.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="bundle-test-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_bundled_verifier_runs_sandboxed_without_the_projects_registry(outside_tmp: Path):
    """Domain code of a bundle inside its project sees the bundle's copy, never the registry directory."""
    from graduation.verifiers.sandbox import require
    from graduation.service.jobs import plan_job
    from graduation.jobs.rewards import job_rewards

    try:
        require("bwrap")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no sandbox here: {exc}")
    root = with_python_verifier(make_project(outside_tmp / "proj"))
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    register(db, root)
    job = plan_job(db, root, "toy-arithmetic", mode="grpo", name="boxed").job
    spy = job.path / "project" / "checks" / "norm.py"
    # not through the seal (the reward module builds verifiers directly): what can the code see?
    spy.write_text("import os\n\ndef norm(x):\n    db = os.path.exists(%r)\n    own = os.path.exists(%r)\n"
                   "    return str(x).strip() if (own and not db) else os.urandom(8).hex()\n"
                   % (str(root / "registry" / "registry.db"), str(spy)))
    funcs = job_rewards(job.path)
    assert funcs["substance_sum_exact"](["2+2="], ["4"], answer=["4"]) == [1.0]  # it saw its code, not the db
    db.dispose()


def short_domain(root: Path) -> None:
    """A GRPO run of a few steps (as in test_jobs), on a smaller tiny base built in the project first."""
    from graduation.training import models
    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base

    build_tiny_base(models.tiny_dir(root, "arithmetic"), arithmetic_corpus(2000, max_operand=9),
                    TinyConfig(hidden_size=48, intermediate_size=96, pretrain_steps=60))
    path = root / "domains" / "toy-arithmetic.yaml"
    text = path.read_text().replace("    per_device_train_batch_size: 128\n", "    per_device_train_batch_size: 16\n")
    path.write_text(text.replace("    max_steps: 200\n", "    max_steps: 4\n")
                    .replace("    eval_every_steps: 50\n", "    eval_every_steps: 2\n"))


def launch(job_dir: Path, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_DB_URL", "GRADUATION_PROJECT")}
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", **extra)
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["bash", str(job_dir / "launch.sh"), "local"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_a_bundle_copied_elsewhere_runs_with_the_same_result(tmp_path: Path):
    """The acceptance test: two jobs generated alike; one run in place, one copied out of the project and run
    there (another directory, another working directory, the registry named by REGISTRY_DB_URL): every round's
    checkpoint has the same digest (the same weights, byte for byte), the same rewards, the same steps."""
    pytest.importorskip("trl")
    from graduation.service.jobs import plan_job
    from graduation.store.jobs import get_job, job_dict

    root = make_project(tmp_path / "proj")
    short_domain(root)
    db = Database(f"sqlite:///{root / 'registry' / 'registry.db'}")
    register(db, root)
    here = plan_job(db, root, "toy-arithmetic", mode="grpo", name="here").job
    there = plan_job(db, root, "toy-arithmetic", mode="grpo", name="there").job
    assert (here.path / "model" / "config.json").is_file()  # the built tiny model travels with the bundle
    for job in (here, there):
        for needle in {str(root), str(root.resolve())}:
            assert not [p for p in job.path.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]
    away = copied(there.path, tmp_path / "elsewhere" / "cluster")
    shutil.rmtree(there.path)  # nothing of the original is left to lean on
    first = launch(here.path, tmp_path / "cwd-a")
    assert first.returncode == 0, first.stderr[-3000:]
    second = launch(away, tmp_path / "cwd-b", REGISTRY_DB_URL=db.url)
    assert second.returncode == 0, second.stderr[-3000:]
    with db.read() as session:
        a, b = (job_dict(get_job(session, j))["detail"] for j in ("here", "there"))
    assert a["steps"] == b["steps"] == 4
    assert [(r["round"], r["step"], r["digest"]) for r in a["rounds"]] == \
        [(r["round"], r["step"], r["digest"]) for r in b["rounds"]]
    assert a["reward_means"] == b["reward_means"] and a["reward_means"]
    assert all("pass_rate" in r for r in a["rounds"])
    # the copy's rounds are the same artifacts answering the same way: the registry keeps them once
    assert all(r.get("recorded") is False for r in b["rounds"])
    assert not (away / "output" / "base-model").exists() and (away / "output" / "model" / "config.json").is_file()
    # an edit of the copied rewards.py is refused, naming it, and the job is marked refused
    (away / "rewards.py").write_text((away / "rewards.py").read_text() + "\n# tuned\n")
    third = launch(away, tmp_path / "cwd-b", REGISTRY_DB_URL=db.url)
    assert third.returncode == 1 and "rewards.py changed" in third.stderr
    db.dispose()
