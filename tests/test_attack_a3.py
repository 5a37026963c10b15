"""Attacks on a domain's identity through Python's import system (attacker a3).

The identity of a version hashes the python verifier's module and its local imports, and the gate checks
those files on disk. Python does not import "the file the identity hashed", though: it imports whatever its
finders resolve first. A file planted next to the hashed ones (a package directory of the same name, an
extension module, a module shadowing one the verifier imports from elsewhere) or a bytecode file in
``__pycache__`` whose header matches the source's size and mtime, changes what the verifier runs while every
hashed file is unchanged. Each must be a change of the domain (denied until registered again) or never run.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import marshal
import os
import struct
from pathlib import Path

import pytest

from graduation.records import VerifierCheck, VerifierValidationRecord
from graduation.store import Database
from graduation.store.auditlog import anchor_path
from graduation.store.evidence import add_evidence
from tests.conftest import write_domain

DOMAIN = """\
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
    options: {function: "checks.toy:same"}
"""

HONEST = ("import fractions\nimport statistics\n\nfrom checks.helper import norm\n\n\n"
          "def same(o, r, row=None):\n    return norm(o) == norm(r)\n")
ALWAYS = "def same(o, r, row=None):\n    return True\n"


def registered_and_validated(cli, project: Path, db_url: str, domain: str, kind: str) -> None:
    """Register the project's domains and record a trustworthy validation of ``domain``'s verifier: the gate opens."""
    assert cli("register", str(project / "domains")).exit_code == 0
    db = Database(db_url, anchor=anchor_path(project, db_url))
    with db.write() as s:
        add_evidence(s, domain, "verifier_validation", VerifierValidationRecord(verifiers=[VerifierCheck(
            name="answer", role="substance", kind=kind, references=10, references_accepted=10, controls=30,
            controls_rejected=30, trustworthy=True)]))
    db.dispose()
    assert cli("status", domain, "--require", "train:grpo").exit_code == 0


@pytest.fixture
def proj(project: Path, cli, db_url: str) -> Path:
    (project / "checks").mkdir()
    (project / "checks" / "__init__.py").write_text("")
    (project / "checks" / "toy.py").write_text(HONEST)
    (project / "checks" / "helper.py").write_text("def norm(x):\n    return str(x).strip()\n")
    write_domain(project, "toy", text=DOMAIN, rows='{"prompt": "1+1=", "answer": "2"}\n')
    registered_and_validated(cli, project, db_url, "toy", "python")
    return project


@pytest.mark.parametrize("planted", [
    "checks/toy/__init__.py",                                              # a package beats the module file
    "checks/toy" + importlib.machinery.EXTENSION_SUFFIXES[0],              # an extension module beats it too
    "checks/helper/__init__.py",                                           # the same for a local import
    "fractions.py",                                                        # the project root comes first on sys.path
    "_statistics.py",                                                      # ... for the stdlib's own imports too
])
def test_a_planted_module_that_python_would_import_instead_is_a_change(cli, proj, planted):
    target = proj / planted
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(ALWAYS)
    result = cli("status", "toy", "--require", "train:grpo")
    assert result.exit_code == 1, result.output
    assert "changed since version 1: register it again" in result.output
    assert planted in result.output


def test_python_resolves_a_package_before_the_module_file_the_identity_hashed(cli, proj):
    """What the test above relies on: Python itself would run the planted package."""
    (proj / "checks" / "toy").mkdir()
    (proj / "checks" / "toy" / "__init__.py").write_text(ALWAYS)
    spec = importlib.machinery.PathFinder.find_spec("toy", [str(proj / "checks")])
    assert spec is not None and spec.origin == str(proj / "checks" / "toy" / "__init__.py")


def _plant_bytecode(source: Path, code_text: str) -> Path:
    """A ``__pycache__`` file that Python accepts for ``source`` (its header has the source's mtime and size)."""
    st = source.stat()
    code = compile(code_text, str(source), "exec")
    pyc = Path(importlib.util.cache_from_source(str(source)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF,
                                                              st.st_size & 0xFFFFFFFF) + marshal.dumps(code))
    return pyc


@pytest.mark.parametrize("sandboxed", [True, False])
def test_planted_bytecode_never_runs_in_place_of_the_hashed_source(cli, proj, tmp_path, sandboxed):
    from graduation.verifiers.sandbox import probe

    if sandboxed and probe() is not None:
        pytest.skip(f"no sandbox here: {probe()}")
    assert cli("models", "register", "m", "--digest", "sha256:" + "5" * 64).exit_code == 0
    _plant_bytecode(proj / "checks" / "toy.py", ALWAYS)
    assert cli("status", "toy", "--require", "train:grpo").exit_code == 0  # the hashed files did not change
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    args = ["evaluate", "toy", "--outputs", str(outputs), "--model", "m", "--json"]
    result = cli(*args, *([] if sandboxed else ["--unsandboxed"]))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["n"], record["passed"]) == (1, 0), record  # the source's verdict, not the planted bytecode's


COMMAND_DOMAIN = """\
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
    options: {argv: [python3, scripts/judge.py]}
"""


def _command_project(project: Path, cli, db_url: str) -> None:
    (project / "scripts").mkdir()
    (project / "scripts" / "judge.py").write_text(
        "import json, sys\nfrom rules import same\n\nd = json.load(sys.stdin)\n"
        "print(json.dumps({'pass': same(d['output'], d['reference'])}))\n")
    (project / "scripts" / "rules.py").write_text("def same(o, r):\n    return str(o).strip() == str(r).strip()\n")
    write_domain(project, "cmd", text=COMMAND_DOMAIN, rows='{"prompt": "1+1=", "answer": "2"}\n')
    registered_and_validated(cli, project, db_url, "cmd", "command")


@pytest.mark.parametrize("edit", ["changed", "planted", "shadow"])
def test_a_command_scripts_local_imports_are_part_of_the_identity(cli, project, db_url, edit):
    """`python3 scripts/judge.py` imports scripts/rules.py (its directory is first on its path): replacing that
    module, or planting a module that Python finds first, changes every verdict the command gives."""
    _command_project(project, cli, db_url)
    if edit == "changed":
        (project / "scripts" / "rules.py").write_text("def same(o, r):\n    return True\n")
        shown = "scripts/rules.py changed"
    elif edit == "shadow":
        (project / "scripts" / "_json.py").write_text("raise ImportError\n")
        shown = "scripts/_json.py is new"
    else:
        (project / "scripts" / "rules").mkdir()
        (project / "scripts" / "rules" / "__init__.py").write_text("def same(o, r):\n    return True\n")
        shown = "scripts/rules/__init__.py is new"
    result = cli("status", "cmd", "--require", "train:grpo")
    assert result.exit_code == 1, result.output
    assert shown in result.output and "changed since version 1: register it again" in result.output


def test_a_local_import_linked_outside_the_project_is_a_change_not_a_traceback(cli, proj, tmp_path_factory):
    """`checks/helper.py` replaced by a link to a file outside the project: the identity code resolved every
    module path against the project root and raised ValueError (a traceback, exit 1) in `register`."""
    outside = tmp_path_factory.mktemp("elsewhere") / "helper.py"
    outside.write_text("def norm(x):\n    return ''\n")
    helper = proj / "checks" / "helper.py"
    helper.unlink()
    helper.symlink_to(outside)
    result = cli("status", "toy", "--require", "train:grpo")
    assert result.exit_code == 1, result.output
    assert "checks/helper.py changed" in result.output
    again = cli("register", str(proj / "domains"))  # a traceback would raise here (catch_exceptions=False)
    assert again.exit_code in (0, 2), again.output
    if again.exit_code == 0:  # hashed through the link: editing its target is a change again
        assert cli("status", "toy").exit_code == 0
        outside.write_text("def norm(x):\n    return 'x'\n")
        result = cli("status", "toy", "--require", "train:grpo")
        assert result.exit_code == 1 and "checks/helper.py changed" in result.output, result.output


STDLIB_SHADOW = """\
import builtins
_getattr = builtins.getattr


def _patched(obj, name, *default):
    if name == "same":
        return lambda *a, **k: True
    return _getattr(obj, name, *default)


builtins.getattr = _patched
raise ImportError("statistics falls back to its pure-python code")
"""


def test_a_module_shadowing_what_the_standard_library_imports_never_decides(cli, proj, tmp_path):
    """`statistics` (imported by the verifier) imports `_statistics`: a `_statistics.py` planted in the project
    root ran inside the worker and replaced the verifier function (every output passed, and the gate said
    nothing had changed). Now it is a change: evaluation refuses, the gate denies."""
    from graduation.verifiers.sandbox import probe

    if probe() is not None:
        pytest.skip(f"no sandbox here: {probe()}")
    assert cli("models", "register", "m", "--digest", "sha256:" + "5" * 64).exit_code == 0
    (proj / "_statistics.py").write_text(STDLIB_SHADOW)
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    result = cli("evaluate", "toy", "--outputs", str(outputs), "--model", "m", "--json")
    if result.exit_code == 0:
        record = json.loads(result.stdout)["record"]
        assert (record["n"], record["passed"]) == (1, 0), record
    else:
        assert result.exit_code == 2 and "_statistics.py is new" in result.output, result.output
    status = cli("status", "toy", "--require", "train:grpo")
    assert status.exit_code == 1 and "_statistics.py is new" in status.output, status.output


def test_a_graduation_package_planted_in_the_project_does_not_replace_the_worker(cli, project, db_url, tmp_path):
    """The worker ran `python -m graduation.verifiers.worker` in the project directory, which put the project
    first on its own path: a copy of the package there, whose command verifier passes everything, ran instead
    (for a command verifier nothing of the project root is imported, so its identity does not cover it)."""
    import shutil

    import graduation

    from graduation.verifiers.sandbox import probe

    if probe() is not None:
        pytest.skip(f"no sandbox here: {probe()}")
    _command_project(project, cli, db_url)
    assert cli("models", "register", "m", "--digest", "sha256:" + "5" * 64).exit_code == 0
    fake = project / "graduation"
    shutil.copytree(Path(graduation.__file__).parent, fake, ignore=shutil.ignore_patterns("__pycache__"))
    kind = fake / "verifiers" / "command.py"
    text = kind.read_text()
    line = "def _from_json(answer: dict, threshold: float) -> Verdict:\n"
    assert line in text
    kind.write_text(text.replace(line, line + "    return Verdict('pass', 1.0, None, None)\n"))
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    result = cli("evaluate", "cmd", "--outputs", str(outputs), "--model", "m", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["n"], record["passed"]) == (1, 0), record


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_data_file_replaced_by_a_fifo_or_a_device_is_a_change_not_a_hang(cli, proj, db_url, kind):
    """The gate hashed whatever the path opened: a FIFO blocked `status` forever, a link to /dev/zero read
    forever. A CI gate that never answers is not an answer."""
    import subprocess
    import sys

    data = proj / "domains" / "data" / "toy.jsonl"
    data.unlink()
    if kind == "fifo":
        os.mkfifo(data)
    else:
        data.symlink_to("/dev/zero")
    code = ("import sys\nfrom graduation.cli import app\n"
            "sys.argv = ['registry'] + sys.argv[1:]\napp()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code, "--project", str(proj), "--db", db_url,
                             "status", "toy", "--require", "train:grpo"], capture_output=True, text=True,
                            timeout=30, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "domains/data/toy.jsonl is not a regular file" in result.stdout + result.stderr


def test_an_allowed_signers_file_that_is_not_utf8_is_bad_input_not_a_traceback(cli, proj):
    """policies/allowed_signers is read with every policy: a byte that is not UTF-8 raised UnicodeDecodeError out of
    `status --require` (a traceback, exit 1: "denied" for what is bad input)."""
    (proj / "policies" / "allowed_signers").write_bytes(b'alice@example.org namespaces="graduation" ssh-ed25519 AAAA\n'
                                                        b"\xff\xfe\n")
    for args in (("status", "toy", "--require", "train:grpo"), ("policy", "validate")):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert "allowed_signers:2: not valid UTF-8" in result.output


def test_a_nul_in_the_project_configuration_is_bad_input_not_a_traceback(cli, proj):
    """graduation.yaml's allowed_roots were resolved as given: a NUL raised ValueError (a traceback, exit 1)."""
    (proj / "graduation.yaml").write_text('allowed_roots: ["shared\\x00data"]\n')
    result = cli("register", str(proj / "domains"))
    assert result.exit_code == 2, result.output
    assert "graduation.yaml:1:1: the project configuration must be" in result.output


def test_planted_bytecode_never_runs_in_place_of_a_command_scripts_local_import(cli, project, db_url, tmp_path):
    from graduation.verifiers.sandbox import probe

    if probe() is not None:
        pytest.skip(f"no sandbox here: {probe()}")
    _command_project(project, cli, db_url)
    assert cli("models", "register", "m", "--digest", "sha256:" + "5" * 64).exit_code == 0
    _plant_bytecode(project / "scripts" / "rules.py", "def same(o, r):\n    return True\n")
    assert cli("status", "cmd", "--require", "train:grpo").exit_code == 0  # the hashed files did not change
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "1+1=", "output": "banana"}) + "\n")
    result = cli("evaluate", "cmd", "--outputs", str(outputs), "--model", "m", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["n"], record["passed"]) == (1, 0), record


def test_a_file_changed_while_registration_hashed_it_gets_no_fast_path(cli, project, monkeypatch):
    """Registration hashed every file, then took their stats: a file replaced in between (same size) had the
    new file's stat recorded beside the old content's hash, and the gate's fast path trusted that pair: the
    disk differed from the version while `status` said nothing had changed."""
    import graduation.identity as identity

    (project / "checks").mkdir()
    (project / "checks" / "__init__.py").write_text("")
    (project / "checks" / "toy.py").write_text(HONEST)
    (project / "checks" / "helper.py").write_text("def norm(x):\n    return str(x).strip()\n")
    write_domain(project, "toy", text=DOMAIN, rows='{"prompt": "1+1=", "answer": "2"}\n')
    target = project / "checks" / "helper.py"
    real = identity.sha256_file

    def racing(path, *args, **kwargs):
        digest = real(path, *args, **kwargs)
        if Path(path) == target:  # the attacker's write lands right after the read
            target.write_text("def norm(x):\n    return str(x)[:0]+' '\n")  # the same size
        return digest

    monkeypatch.setattr(identity, "sha256_file", racing)
    assert cli("register", str(project / "domains")).exit_code == 0
    monkeypatch.setattr(identity, "sha256_file", real)
    result = cli("status", "toy", "--require", "train:grpo")
    assert "checks/helper.py changed" in result.output, result.output
    assert result.exit_code == 1
