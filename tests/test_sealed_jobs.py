"""Sealed jobs: every file of the bundle is pinned by a manifest whose hash the registry keeps; a launch
re-decides under the pinned policy; job state moves by compare-and-set with a lease and heartbeat."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml

from graduation.jobs.generate import JobRefused
from tests.test_jobs import REPO, env  # noqa: F401 - the fixture


def plan(db, root, name: str):
    from graduation.service.jobs import plan_job

    return plan_job(db, root, "toy-arithmetic", mode="grpo", name=name).job.path


def test_data_edited_together_with_its_pin_in_job_yaml_is_refused(env):  # noqa: F811
    from graduation.service.launch import run_job

    root, db = env
    path = plan(db, root, "both")
    data = path / "data" / "train.jsonl"
    data.write_text(data.read_text() + '{"prompt": "1+1=", "answer": "3"}\n')
    job = yaml.safe_load((path / "job.yaml").read_text())
    job["datasets"]["train"]["sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    job["datasets"]["train"]["rows"] += 1
    (path / "job.yaml").write_text(yaml.safe_dump(job))
    with pytest.raises(JobRefused, match="data/train.jsonl changed") as exc:
        run_job(db, root, "both", check_only=True)
    assert "job.yaml changed" in str(exc.value)


@pytest.mark.parametrize("rel, edit", [
    ("recipe.yaml", lambda t: t.replace("learning_rate", "learning_rate_x") if "learning_rate" in t else t + "\n# x\n"),
    ("rewards.py", lambda t: t + "\ndef substance_answer(*a, **k):\n    return [1.0] * 64\n"),
    ("launch.sh", lambda t: t.replace("jobs run", "true")),
])
def test_any_bundle_file_edited_is_refused(env, rel, edit):  # noqa: F811
    from graduation.service.launch import run_job

    root, db = env
    path = plan(db, root, "edit")
    if not (path / rel).exists():
        pytest.skip(f"{rel} is not rendered for this target")
    (path / rel).write_text(edit((path / rel).read_text()))
    with pytest.raises(JobRefused, match=f"{rel} changed"):
        run_job(db, root, "edit", check_only=True)


def test_a_file_added_to_the_bundle_is_refused(env):  # noqa: F811
    from graduation.service.launch import run_job

    root, db = env
    path = plan(db, root, "added")
    (path / "sitecustomize.py").write_text("import os\n")
    with pytest.raises(JobRefused, match="sitecustomize.py was added"):
        run_job(db, root, "added", check_only=True)


def test_the_manifest_in_the_registry_edited_is_refused_and_detected(env):  # noqa: F811
    from sqlalchemy import text

    from graduation.store.auditlog import verify
    from graduation.service.launch import run_job

    root, db = env
    path = plan(db, root, "seal")
    data = path / "data" / "train.jsonl"
    data.write_text(data.read_text() + '{"prompt": "1+1=", "answer": "3"}\n')
    with db.engine.begin() as conn:
        detail = json.loads(conn.execute(text("SELECT detail_json FROM jobs WHERE id = 'seal'")).scalar())
        detail["manifest"]["data/train.jsonl"] = hashlib.sha256(data.read_bytes()).hexdigest()
        conn.execute(text("UPDATE jobs SET detail_json = :d WHERE id = 'seal'"), {"d": json.dumps(detail)})
    with pytest.raises(JobRefused, match="does not match its sealed hash"):
        run_job(db, root, "seal", check_only=True)
    with db.read() as s:
        assert not verify(s).ok


def test_a_changed_policy_that_still_allows_is_refused(env):  # noqa: F811
    from graduation.service.launch import run_job

    root, db = env
    plan(db, root, "pinned")
    loose = root / "policies" / "loose.yaml"
    policy = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    policy["policy"] = "loose"
    policy["description"] = "the same rules under another digest"
    loose.write_text(yaml.safe_dump(policy))
    with pytest.raises(JobRefused, match="approved under policy 'default'"):
        run_job(db, root, "pinned", check_only=True, policy_path=loose)
    assert run_job(db, root, "pinned", check_only=True).decision_id


def test_a_second_run_is_refused_while_the_lease_holds(env):  # noqa: F811
    from graduation.errors import InputError
    from graduation.service.launch import run_job
    from graduation.store.jobs import claim

    root, db = env
    plan(db, root, "twice")
    with db.write() as s:
        claim(s, "twice", "first-run")
    with db.write() as s, pytest.raises(InputError, match="already running"):
        claim(s, "twice", "second-run")
    with pytest.raises(InputError, match="already running"):
        run_job(db, root, "twice")


def test_a_killed_run_shows_interrupted_and_can_be_resumed(env, monkeypatch):  # noqa: F811
    """SIGKILL leaves no handler to run: the lease expires and the job reads as interrupted."""
    from graduation.store.jobs import claim, get_job, heartbeat, job_dict

    monkeypatch.setenv("GRADUATION_JOB_LEASE_S", "1")
    root, db = env
    plan(db, root, "killed")
    with db.write() as s:
        claim(s, "killed", "dead-run")
    with db.read() as s:
        assert job_dict(get_job(s, "killed"))["state"] == "running"
    time.sleep(1.2)
    with db.read() as s:
        assert job_dict(get_job(s, "killed"))["state"] == "interrupted"
    with db.write() as s:
        claim(s, "killed", "resumed-run")  # resumable
        assert not heartbeat(s, "killed", "dead-run")  # the old owner's heartbeat cannot take it back
        assert heartbeat(s, "killed", "resumed-run")


def test_kubernetes_trainjob_checks_before_it_launches(env):  # noqa: F811
    from graduation.service.jobs import plan_job

    root, db = env
    path = plan_job(db, root, "toy-arithmetic", mode="grpo", name="k8s", target="kubernetes").job.path
    text = "\n".join(p.read_text() for p in path.rglob("*.yaml") if "trainjob" in p.name.lower() or "k8s" in p.name)
    assert "jobs run k8s --check" in text
    launch = (path / "launch.sh").read_text()
    assert "jobs run \"$JOB_ID\" --check" in launch
