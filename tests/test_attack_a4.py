"""Attacks by a4 on the verdict cache, the policy pins and the adapters sampled by `evaluate --generate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_attack_a3 import _command_project, proj  # noqa: F401 - fixture

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
