"""Cold start of `registry list --json` over 1,000 registered domains, as a ratio to `python -c pass`.

Both are run side by side, alternating, in fresh processes. Run: `make bench` or
`.venv/bin/python benchmarks/cli_startup.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import loaded_domain_cls, python_pass_time, report, time_command  # noqa: E402

from graduation.spec import DomainSpec  # noqa: E402
from graduation.store import Database  # noqa: E402
from graduation.store.domains import register  # noqa: E402

LoadedDomain = loaded_domain_cls()
N_DOMAINS = 1000


def populate(root: Path) -> str:
    url = f"sqlite:///{root / 'registry' / 'registry.db'}"
    db = Database(url)
    with db.write() as session:
        for i in range(N_DOMAINS):
            spec = DomainSpec(domain=f"domain-{i:04d}", title=f"Domain {i}", risk="high", owners=["t@example.org"])
            register(session, LoadedDomain(spec, f"domains/domain-{i:04d}.yaml", {}))
    db.dispose()
    return url


def main() -> None:
    registry = Path(sys.executable).parent / "registry"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "registry").mkdir()
        url = populate(root)
        env = {**os.environ, "REGISTRY_DB_URL": url}
        out = subprocess.run([str(registry), "list", "--json"], cwd=root, env=env, capture_output=True,
                             text=True, check=True)
        assert len(json.loads(out.stdout)) == N_DOMAINS
        baseline = python_pass_time()
        ours = time_command([str(registry), "list", "--json"], cwd=root, env=env)
        baseline_after = python_pass_time()
    base = (baseline + baseline_after) / 2
    report("registry list --json, 1,000 domains, cold process", [
        ("python -c pass", f"{base * 1000:.0f} ms"),
        ("registry list --json", f"{ours * 1000:.0f} ms"),
        ("ratio", f"{ours / base:.1f}x python -c pass"),
        ("under one second", "yes" if ours < 1.0 else "NO"),
    ])


if __name__ == "__main__":
    main()
