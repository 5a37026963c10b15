"""The layers of ARCHITECTURE.md hold: contracts checked by import-linter, and the pure core loads no store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlmodel", "sqlalchemy", "alembic", "torch", "transformers", "trl", "graduation.store", "graduation.service",
         "graduation.jobs", "graduation.training", "graduation.cli")


def _loaded_after(statement: str) -> list[str]:
    code = (f"import json, sys\n{statement}\n"
            "print(json.dumps(sorted(sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", ["graduation.policy", "graduation.policy.testing", "graduation.records",
                                    "graduation.evidence", "graduation.verifiers", "graduation.spec"])
def test_the_pure_core_loads_no_store_service_or_torch(module):
    loaded = _loaded_after(f"import {module}")
    assert module in loaded
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


def test_the_check_itself_sees_a_store_import():
    # the probe is not vacuous: a module that reaches the store shows up
    loaded = _loaded_after("import graduation.store.evidence")
    assert "graduation.store.chain" in loaded and "sqlmodel" in loaded


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(exe), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_import_contracts_are_kept_and_catch_an_upward_import(tmp_path):
    if not Path(sys.executable).with_name("lint-imports").exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    kept = _lint(ROOT)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    # a copy of the tree with one core module reaching into the store breaks a contract
    import shutil

    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    facts = tmp_path / "src" / "graduation" / "policy" / "facts.py"
    facts.write_text(facts.read_text() + "\n\ndef _leak():\n    from graduation.store import chain  # noqa\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "graduation.policy.facts -> graduation.store" in broken.stdout


def test_every_criterion_a_rule_may_name_has_its_unmet_items():
    from graduation.policy.explain import UNMET
    from graduation.policy.model import CRITERIA, RuleSpec

    assert sorted(UNMET) == sorted(CRITERIA)
    assert sorted(RuleSpec.model_json_schema()["properties"]["criteria"]["items"]["enum"]) == sorted(CRITERIA)
