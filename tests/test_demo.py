"""`make demo` end to end, in a copy of the example project: every case prints the decision it is built for."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_runs_the_whole_lifecycle(tmp_path: Path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--project", str(tmp_path)],
                            capture_output=True, text=True, timeout=540, env={"PATH": str(Path(sys.executable).parent)
                                                                               + ":/usr/bin:/bin",
                                                                               "HOME": str(tmp_path)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    # golden_hour_sun: named with its rate, SFT refused, GRPO allowed
    assert re.search(r"golden_hour_sun\s.*40\.0%", out)
    assert "train:sft: denied by sft-data-fails-verifiers, sft-unsupported-symbols" in out
    # ACLS graduated by the external route; pedestrians stay in discovery naming the slice
    assert "acls-cardiac-arrest (risk critical): graduated via the external route" in out
    assert "outside-crosswalk" in out
    # the toy domain learns and graduates from its own rounds, then SFT runs and deployment is allowed
    rates = [float(x) for x in re.findall(r"round \d+ \(step \d+\): \d+/\d+ verified, pass rate ([\d.]+)%", out)]
    assert len(rates) >= 3 and rates[-1] - rates[0] >= 20, rates
    assert "toy-arithmetic (risk low): graduated via the internal route" in out
    assert "allowed deploy:assisted for 1 domain(s)" in out  # the GRPO checkpoint, by the digest of its files
    assert "toy-arithmetic / toy-arithmetic-grpo@" in out
    # candidate first: the checkpoint's job round, then a confirmation round the registry sampled itself
    assert re.search(r"toy-arithmetic-grpo@\d+ \(round 2, generated\)", out)
    assert "tiny-arithmetic@1 is in discovery" in out  # the base model, sampled by the registry, has not earned it
    assert "acls-cardiac-arrest / acls-assistant-7b@1 (risk critical): discovery" in out  # SFT yes, deploy waits
    # the refusal of SFT on contaminated data writes no job
    assert "no job was written" in out
    assert not any(p.name.startswith("hamiltonian-mechanics-sft") for p in (tmp_path / "registry" / "jobs").iterdir())
    assert "audit log intact" in out
    assert (tmp_path / "registry" / "reports" / "index.html").is_file()
    assert re.search(r"demo finished in \d+ s", out)
