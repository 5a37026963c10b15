"""The lifecycle demo: `make demo`.

Registers the example domains in a fresh embedded registry (registry/registry.db), gathers evidence
for each of the cases graduation is built for, prints the decisions with their reasons, trains the
toy domain with GRPO until it graduates from its own evidence rounds, crystallises it with SFT, shows
the refusal of SFT on contaminated data, verifies the audit chain and writes the HTML report.

Every step is a real `registry` command, printed before it runs, so the demo doubles as a tour.

    python scripts/demo.py                  # in this repository (what `make demo` runs)
    python scripts/demo.py --project DIR    # in a copy of domains/ and policies/ at DIR
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO  # the project the demo runs in; --project moves it
REGISTRY = str(Path(sys.executable).parent / "registry")
START = time.perf_counter()
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
if not sys.stdout.isatty():
    BOLD = DIM = GREEN = RED = RESET = ""


def chapter(title: str, text: str) -> None:
    print(f"\n{BOLD}== {title}{RESET}\n{DIM}{text}{RESET}", flush=True)


def registry(*args: str, expect: int = 0, quiet: bool = False) -> subprocess.CompletedProcess:
    """Run one `registry` command as a user would; stop the demo if its exit code is not `expect`."""
    print(f"{BOLD}$ registry {shlex.join(args)}{RESET}", flush=True)
    env = {**os.environ, "COLUMNS": os.environ.get("COLUMNS", "120")}
    result = subprocess.run([REGISTRY, *args], cwd=ROOT, text=True, capture_output=True, env=env)
    if not quiet or result.returncode != expect:
        sys.stdout.write(result.stdout)
        sys.stdout.write(result.stderr)
    mark = f"{GREEN}exit {result.returncode}{RESET}" if result.returncode == expect else \
        f"{RED}exit {result.returncode}, expected {expect}{RESET}"
    print(f"{DIM}-> {RESET}{mark}", flush=True)
    if result.returncode != expect:
        raise SystemExit(f"demo stopped: `registry {shlex.join(args)}` exited {result.returncode}, "
                         f"expected {expect}")
    return result


def fresh_registry() -> None:
    home = ROOT / "registry"
    for name in ("registry.db", "registry.db-wal", "registry.db-shm", "audit-head.json", "audit-head.lock"):
        (home / name).unlink(missing_ok=True)
    for sub in ("jobs", "reports"):
        shutil.rmtree(home / sub, ignore_errors=True)
    home.mkdir(exist_ok=True)


def use_project(directory: Path) -> None:
    """Run in ``directory``: a copy of the repository's domains/ and policies/ (made once)."""
    global ROOT
    ROOT = directory.resolve()
    if ROOT == REPO:
        return
    for part in ("domains", "policies"):
        if not (ROOT / part).exists():
            shutil.copytree(REPO / part, ROOT / part, ignore=shutil.ignore_patterns("__pycache__"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The graduation lifecycle demo.")
    parser.add_argument("--project", type=Path, default=REPO, help="where to run (default: this repository)")
    use_project(parser.parse_args(argv).project)
    os.environ.pop("REGISTRY_DB_URL", None)
    os.environ.pop("GRADUATION_PROJECT", None)
    fresh_registry()

    chapter("1. Declare", "Domains are YAML files with ground truth, provenance, verifiers and a risk level.")
    registry("validate", "domains/")
    registry("register", "domains/")
    registry("register", "domains/")  # idempotent: the second run changes nothing

    chapter("2. Validate the verifiers", "A verifier must accept its references and reject known-wrong "
            "controls and generated mutations; one that cannot fail cannot back graduation.")
    for domain in ("hamiltonian-mechanics", "acls-cardiac-arrest", "pedestrian-perception",
                   "arith-reasoning-gym", "toy-arithmetic"):
        registry("verifiers", "check", domain)

    chapter("3. The golden_hour_sun case", "A distilled SFT set from an ungraduated instruct model: well "
            "formatted, and 40% of its answers carry an invented parameter.")
    registry("audit-data", "hamiltonian-mechanics", "domains/data/hamiltonian-mechanics/distilled.jsonl")
    # models kept elsewhere are registered by their digest (an OCI image, an object store, a hub revision)
    registry("models", "register", "candidate-7b", "--digest", "sha256:" + "c7" * 32, "--base-model", "some-base-7b")
    registry("evaluate", "hamiltonian-mechanics", "--outputs", "domains/data/hamiltonian-mechanics/outputs.jsonl",
             "--model", "candidate-7b")
    registry("explain", "hamiltonian-mechanics", "train:sft", expect=1)
    registry("explain", "hamiltonian-mechanics", "train:grpo")

    chapter("4. ACLS: graduated elsewhere", "An authoritative, audited protocol: its data may be copied "
            "faithfully (SFT); deploying an assistant model needs that model's own rounds, an audit and two "
            "sign-offs; nothing explores on live patients.")
    registry("models", "register", "acls-assistant-7b", "--digest", "sha256:" + "a5" * 32)
    registry("evaluate", "acls-cardiac-arrest", "--outputs", "domains/data/acls-cardiac-arrest/outputs.jsonl",
             "--model", "acls-assistant-7b")
    registry("evidence", "add", "acls-cardiac-arrest", "--kind", "human_audit", "--by", "dr.okafor@example.org",
             "--model", "acls-assistant-7b", "--items", "domains/data/acls-cardiac-arrest/audit_outputs.jsonl")
    registry("status", "acls-cardiac-arrest", "--require", "train:sft")
    registry("status", "acls-cardiac-arrest", "--require", "deploy:assisted", expect=2)  # which model?
    registry("status", "acls-cardiac-arrest", "--model", "acls-assistant-7b", "--require", "deploy:assisted",
             expect=1)
    registry("approve", "acls-cardiac-arrest", "--model", "acls-assistant-7b", "--action", "deploy:assisted",
             "--by", "Dr. A. Okafor", "--role", "resuscitation committee chair", expect=1)
    registry("explain", "acls-cardiac-arrest", "online:grpo", "--model", "acls-assistant-7b", expect=1)

    chapter("5. Pedestrians outside crosswalks", "A critical perception domain with a high aggregate pass "
            "rate, one failing slice and labels that flip between samples: still discovering.")
    registry("models", "register", "perception-v3", "--digest", "sha256:" + "9e" * 32)
    registry("evaluate", "pedestrian-perception", "--outputs", "domains/data/pedestrian-perception/outputs.jsonl",
             "--model", "perception-v3")
    registry("status", "pedestrian-perception", "--model", "perception-v3", "--require", "deploy:autonomous",
             expect=1)

    chapter("6. Any reasoning-gym task is a domain", "Scored by reasoning-gym's own scorer.")
    registry("evaluate", "arith-reasoning-gym", "--outputs", "domains/data/arith-reasoning-gym/outputs.jsonl",
             "--model", "candidate-7b")

    chapter("7. Discover, then crystallise", "The toy domain trains for real on this CPU: GRPO with the "
            "verifiers as reward until its own evaluation rounds graduate it, then SFT on verified completions.")
    registry("status", "toy-arithmetic", "--require", "train:sft", expect=1, quiet=True)
    print("   (train:sft denied: the domain is still in discovery)")
    registry("jobs", "generate", "toy-arithmetic", "--mode", "auto", "--name", "toy-arithmetic-grpo")
    registry("jobs", "run", "toy-arithmetic-grpo")  # every checkpoint it evaluates is registered by its digest
    # the job's last round makes its final checkpoint a candidate: one qualifying round never graduates a model;
    # a second round of the same artifact, sampled here by the registry, can
    registry("evaluate", "toy-arithmetic", "--model", "toy-arithmetic-grpo", "--generate", "--max-new-tokens", "8")
    registry("status", "toy-arithmetic", "--require", "train:sft")
    grpo_model = "registry/jobs/toy-arithmetic-grpo/output/model"
    registry("models", "list")
    # the gate asks about the artifact about to ship: the GRPO checkpoint, by the digest of its files ...
    registry("status", "toy-arithmetic", "--model-path", grpo_model, "--require", "deploy:assisted")
    # ... while the base model it started from, sampled here by the registry, has not earned it
    registry("models", "register", "tiny-arithmetic", "--path", "registry/models/tiny-arithmetic")
    registry("evaluate", "toy-arithmetic", "--model", "tiny-arithmetic", "--generate", "--max-new-tokens", "8")
    registry("status", "toy-arithmetic", "--model", "tiny-arithmetic", "--require", "deploy:assisted", expect=1)
    registry("jobs", "generate", "toy-arithmetic", "--mode", "sft", "--from", "toy-arithmetic-grpo",
             "--name", "toy-arithmetic-sft")
    registry("jobs", "run", "toy-arithmetic-sft")
    registry("status", "toy-arithmetic")  # data trust, and a row per model evaluated here
    registry("jobs", "list")

    chapter("8. The photocopier refuses", "SFT on the contaminated Hamiltonian data: no job is written.")
    registry("jobs", "generate", "hamiltonian-mechanics", "--mode", "sft", expect=1)

    chapter("9. Where everything stands", "One table, every domain, with the reasons.")
    registry("status")

    chapter("10. The audit trail", "Every decision relied on is in a hash chain; any edit is detected.")
    registry("audit", "verify")
    report = registry("report")

    elapsed = time.perf_counter() - START
    print(f"\n{BOLD}demo finished in {elapsed:.0f} s{RESET} (after set-up)")
    print(f"report: {ROOT / 'registry' / 'reports' / 'index.html'}")
    del report


if __name__ == "__main__":
    main()
