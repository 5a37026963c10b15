"""Policy engine throughput, side by side with cedarpy, and `registry status --json` cold start.

1. `decide` over 10,000 domains with realistic evidence (validations, evaluation rounds with slices
   and pass^k, data audits with flagged symbols, human audits, sign-offs): decisions/s (target
   >= 20,000/s). A decision covers all 7 actions.
2. The same permit/forbid rules written in Cedar, evaluated by cedarpy on the same 10,000 domains
   (7 requests each, one batch, policies parsed once), with the facts our engine computed as the
   request context. Printed as our decisions/s divided by cedarpy's, both for our full `decide`
   (facts + phase + rules + explanations) and for our rule evaluation alone; every one of the
   70,000 allow/deny answers is checked to agree.
3. `registry status --json` over 1,000 domains and 100,000 evidence records in a cold process, as a
   ratio to `python -c pass` (target: under 1 s).

Run: `.venv/bin/python benchmarks/policy.py` (`--quick` for a smaller run).
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import python_pass_time, report, time_command  # noqa: E402

from graduation.policy import ACTIONS, decide  # noqa: E402
from graduation.policy.engine import evaluate_rules  # noqa: E402
from graduation.policy.model import load_policy, packaged_policy_path  # noqa: E402
from graduation.policy.testing import complete_eval, make_evidence  # noqa: E402
from graduation.spec import DomainSpec  # noqa: E402

RISKS = ["low", "medium", "high", "critical"]
SCENARIOS = ["discovery", "graduated", "sliced", "external", "dirty-data", "regressed", "no-verifier"]


def make_spec(i: int, rng: random.Random) -> tuple[DomainSpec, str]:
    risk = RISKS[i % 4]
    scenario = SCENARIOS[(i // 4) % len(SCENARIOS)]
    sources = [{"name": "reference", "path": f"data/d{i}.jsonl",
                "provenance": "authoritative" if scenario == "external" else "expert",
                "audited": scenario == "external"}]
    if scenario == "dirty-data":
        sources.append({"name": "distilled", "path": f"data/d{i}-distilled.jsonl", "provenance": "model_generated",
                        "derived_from": "reference", "generated_by": {"model": "instruct-32b"}})
    slices = [{"name": "outside-crosswalk", "field": "at_crosswalk", "equals": False},
              {"name": "at-crosswalk", "field": "at_crosswalk", "equals": True}] if scenario == "sliced" else []
    spec = DomainSpec.model_validate({
        "domain": f"domain-{i:05d}", "title": f"Domain {i}", "risk": risk, "owners": ["team@example.org"],
        "ground_truth": sources,
        "verifiers": [{"name": "answer", "kind": "exact", "role": "substance"},
                      {"name": "shape", "kind": "regex", "role": "format"}],
        "slices": slices, "deployment": {"target": rng.choice(["sandbox", "shadow", "assisted", "autonomous"])}})
    return spec, scenario


def make_items(spec: DomainSpec, scenario: str, rng: random.Random, rounds: int) -> list[tuple[str, dict, str | None]]:
    """(kind, summary, author) records of one domain, oldest first."""
    items: list[tuple[str, dict, str | None]] = []
    trustworthy = scenario != "no-verifier"
    items.append(("verifier_validation", {"verifiers": [
        {"name": "answer", "role": "substance", "kind": "exact", "references": 50, "references_accepted": 50,
         "controls": 150, "controls_rejected": 150 if trustworthy else 120, "trustworthy": trustworthy},
        {"name": "shape", "role": "format", "kind": "regex", "references": 50, "references_accepted": 50,
         "controls": 10, "controls_rejected": 10, "trustworthy": True}]}, None))
    for r in range(rounds):
        n = rng.choice([500, 1000, 2000, 4000])
        rate = {"discovery": rng.uniform(0.4, 0.9), "regressed": 0.999 if r < rounds - 1 else 0.7}.get(scenario, 0.999)
        passed = min(n, int(n * rate))
        summary = {"model": f"ckpt-{r}", "round": r + 1, "n": n, "passed": passed,
                   "format_pass_rate": min(1.0, passed / n + rng.uniform(0, 0.01)),
                   "consistency": {"k": 4, "prompts": n // 4, "pass_at_1": passed / n,
                                   "pass_all_k": min(1.0, passed / n + 0.001), "flip_rate": rng.uniform(0, 0.02)}}
        if scenario == "sliced":
            summary["slices"] = [{"name": "at-crosswalk", "n": n - 200, "passed": n - 200},
                                 {"name": "outside-crosswalk", "n": 200, "passed": 110}]
        summary["symbols"] = [{"symbol": "golden_hour_sun", "rows": 5, "rate": 0.005}] if r % 3 == 2 else []
        items.append(("training_round" if r % 2 else "eval", complete_eval(summary), None))
    if scenario == "dirty-data":
        items.append(("data_audit", {"file": "data/distilled.jsonl", "rows": 1000, "substance_failed": 400,
                                     "substance_fail_rate": 0.4, "format_pass_rate": 1.0, "shape_gap": 0.6,
                                     "provenance": "model_generated", "lineage_depth": 1,
                                     "ungraduated_generators": ["instruct-32b"],
                                     "symbols": [{"symbol": "golden_hour_sun", "rows": 400, "rate": 0.4}]}, None))
    else:
        items.append(("data_audit", {"file": "data/sft.jsonl", "rows": 1000, "substance_failed": 0,
                                     "substance_fail_rate": 0.0, "format_pass_rate": 1.0, "shape_gap": 0.0,
                                     "provenance": "expert"}, None))
    items.append(("human_audit", {"auditor": "ann", "checked": 200, "held": 199}, "ann"))
    for who in ("ann", "bob")[: rng.randint(0, 2)]:
        items.append(("signoff", {"by": who, "role": "owner"}, who))
    return items


def corpus(count: int, seed: int = 7, rounds: int = 4):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        spec, scenario = make_spec(i, rng)
        items = make_items(spec, scenario, rng, rounds)
        evidence = [make_evidence(spec.domain, kind, summary, k, author=author)
                    for k, (kind, summary, author) in enumerate(items)]
        out.append((spec, evidence))
    return out


# -- cedar --------------------------------------------------------------------------------------------

CEDAR_POLICIES = """
@id("grpo-needs-validated-verifier")
permit(principal, action == Action::"train:grpo", resource) when { context.substance_validated };
@id("no-validated-substance-verifier")
forbid(principal, action in [Action::"train:grpo", Action::"train:sft"], resource) unless { context.substance_validated };
@id("sft-only-after-graduation")
permit(principal, action == Action::"train:sft", resource) when { context.data_trust };
@id("sft-data-fails-verifiers")
forbid(principal, action == Action::"train:sft", resource) when { context.data_fail_bp > context.max_data_fail_bp };
@id("sft-unsupported-symbols")
forbid(principal, action == Action::"train:sft", resource) when { context.symbols > 0 };
@id("sft-ungraduated-generator")
forbid(principal, action == Action::"train:sft", resource) when { context.ungraduated > 0 };
@id("sft-lineage-too-deep")
forbid(principal, action == Action::"train:sft", resource) when { context.lineage_depth > context.max_lineage_depth };
@id("sft-unaudited-source")
forbid(principal, action == Action::"train:sft", resource) when { context.unaudited > 0 };
@id("deploy-needs-a-model")
forbid(principal, action in [Action::"deploy:shadow", Action::"deploy:assisted", Action::"deploy:autonomous",
                             Action::"online:grpo"], resource) when { context.model == "" };
@id("deploy-needs-a-verified-artifact")
forbid(principal, action in [Action::"deploy:sandbox", Action::"deploy:shadow", Action::"deploy:assisted",
                             Action::"deploy:autonomous", Action::"online:grpo"], resource)
  when { context.model != "" && !context.model_verified };
@id("deploy-never-from-refused-data")
forbid(principal, action in [Action::"deploy:sandbox", Action::"deploy:shadow", Action::"deploy:assisted",
                             Action::"deploy:autonomous", Action::"online:grpo"], resource)
  when { context.refused_data };
@id("sandbox-always")
permit(principal, action == Action::"deploy:sandbox", resource);
@id("shadow-after-discovery")
permit(principal, action == Action::"deploy:shadow", resource)
  when { ["candidate", "graduated", "regressed"].contains(context.phase) };
@id("assisted-when-graduated-and-signed")
permit(principal, action == Action::"deploy:assisted", resource)
  when { context.phase == "graduated" && context.assisted >= context.required_signoffs
         && context.approved.contains("deploy:assisted") };
@id("autonomous-when-graduated-and-signed")
permit(principal, action == Action::"deploy:autonomous", resource)
  when { context.phase == "graduated" && context.autonomous >= context.required_signoffs
         && context.approved.contains("deploy:autonomous") && context.risk_rank <= 2 };
@id("regressed-withdrawn")
forbid(principal, action in [Action::"deploy:assisted", Action::"deploy:autonomous", Action::"online:grpo"],
       resource) when { context.phase == "regressed" };
@id("critical-never-autonomous")
forbid(principal, action == Action::"deploy:autonomous", resource) when { context.risk == "critical" };
@id("online-grpo-low-stakes")
permit(principal, action == Action::"online:grpo", resource)
  when { context.phase == "graduated" && context.substance_validated && context.risk_rank <= 1 };
@id("online-grpo-high-stakes")
forbid(principal, action == Action::"online:grpo", resource) when { ["high", "critical"].contains(context.risk) };
"""


def cedar_context(facts: dict) -> dict:
    """Our facts as a Cedar context (Cedar has no floats: rates in basis points)."""
    t, m, so = facts["thresholds"], facts["model"], facts["signoffs"]
    return {"substance_validated": facts["verifiers"]["substance_validated"], "phase": facts["phase"],
            "risk": facts["domain"]["risk"], "risk_rank": facts["domain"]["risk_rank"],
            "data_trust": facts["data_trust"]["granted"],
            "data_fail_bp": round(facts["data"]["max_substance_fail_rate"] * 10000),
            "max_data_fail_bp": round(t["max_data_fail_rate"] * 10000), "symbols": len(facts["data"]["symbols"]),
            "ungraduated": len(facts["data"]["ungraduated_generators"]), "lineage_depth": facts["data"]["lineage_depth"],
            "unaudited": len(facts["data"]["unaudited"]), "max_lineage_depth": t["max_lineage_depth"],
            "model": m["ref"] or "", "model_verified": bool(m["verified"]), "refused_data": bool(m["refused_data"]),
            "assisted": so["assisted"], "autonomous": so["autonomous"], "approved": list(so.get("approved", [])),
            "required_signoffs": t["required_signoffs"]}


ONE_RULE = '@id("allow-all")\npermit(principal, action, resource);\n'


def cedar_requests(decisions) -> list[dict]:
    return [{"principal": f'Domain::"{d.domain}"', "action": f'Action::"{a}"', "resource": 'Registry::"main"',
             "context": ctx} for d in decisions for ctx in (cedar_context(d.facts),) for a in ACTIONS]


def edge_facts(decisions, policy) -> list[dict]:
    """Facts at the thresholds, one step below and one above: every combination the rules compare."""
    import copy

    out = []
    base = decisions[0].facts
    for phase in ("discovery", "candidate", "graduated", "regressed"):
        for rank, risk in enumerate(RISKS):
            t = policy.thresholds[risk]
            for fail_step in (-1, 0, 1):
                for sign_step in (-1, 0, 1):
                    for depth_step in (-1, 0, 1):
                        for symbols, ungraduated, validated in ((0, 0, True), (1, 0, True), (0, 1, True),
                                                                 (0, 0, False)):
                            f = copy.deepcopy(base)
                            f["phase"] = phase
                            f["domain"]["risk"], f["domain"]["risk_rank"] = risk, rank
                            f["thresholds"] = {**f["thresholds"], **t.model_dump(mode="json")}
                            th = f["thresholds"]
                            f["data"]["max_substance_fail_rate"] = max(0.0, (round(th["max_data_fail_rate"] * 10000)
                                                                              + fail_step) / 10000)
                            f["signoffs"]["count"] = max(0, th["required_signoffs"] + sign_step)
                            f["data"]["lineage_depth"] = max(0, th["max_lineage_depth"] + depth_step)
                            f["data"]["symbols"] = [{"symbol": "golden_hour_sun", "rows": 1, "rate": 0.01}] * symbols
                            f["data"]["ungraduated_generators"] = ["instruct-32b"] * ungraduated
                            f["verifiers"]["substance_validated"] = validated
                            out.append(f)
    return out


def bench_engine(count: int) -> list[tuple[str, str]]:
    import cedarpy

    from graduation.policy.engine import _lookup

    policy = load_policy(packaged_policy_path())
    t0 = time.perf_counter()
    domains = corpus(count)
    built = time.perf_counter() - t0
    records = sum(len(ev) for _s, ev in domains)
    # the corpus is long-lived input: keep the cyclic GC from re-scanning it during the timed loops
    gc.collect()
    gc.freeze()
    decide(domains[0][0], domains[0][1], policy)  # warm caches
    # like for like: cedarpy has no memo, so ours is cleared before every decision (the corpus repeats few rule
    # inputs, and a memo hit would skip the rules); the memoized figures are shown apart, with the hit rate
    memo = policy.memo
    decisions = []
    start, cpu = time.perf_counter(), time.process_time()
    for spec, evidence in domains:
        memo.clear()
        decisions.append(decide(spec, evidence, policy))
    ours, ours_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    for d in decisions:
        memo.clear()
        evaluate_rules(policy, d.facts)
    rules_only = time.perf_counter() - start
    memo.clear()
    start = time.perf_counter()
    memo_decisions = [decide(spec, evidence, policy) for spec, evidence in domains]
    ours_memo = time.perf_counter() - start
    distinct = len(memo)
    memo.clear()
    start = time.perf_counter()
    for d in decisions:
        evaluate_rules(policy, d.facts)
    rules_memo = time.perf_counter() - start
    assert [d.allowed(a) for d in memo_decisions for a in ACTIONS] == [d.allowed(a) for d in decisions
                                                                         for a in ACTIONS]

    policy_set = cedarpy.PolicySet.from_str(CEDAR_POLICIES) if hasattr(cedarpy, "PolicySet") else CEDAR_POLICIES
    one_rule = cedarpy.PolicySet.from_str(ONE_RULE) if hasattr(cedarpy, "PolicySet") else ONE_RULE
    entities = cedarpy.Entities.from_json_str("[]")
    start, cpu = time.perf_counter(), time.process_time()
    requests = cedar_requests(decisions)
    answers = cedarpy.is_authorized_batch(requests, policy_set, entities)
    cedar, cedar_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    floor_answers = cedarpy.is_authorized_batch(cedar_requests(decisions), one_rule, entities)
    floor = time.perf_counter() - start
    n_requests = count * len(ACTIONS)
    assert len(answers) == len(floor_answers) == n_requests and all(a.allowed for a in floor_answers)
    disagreements = sum(answers[i * len(ACTIONS) + j].allowed != d.allowed(action)
                        for i, d in enumerate(decisions) for j, action in enumerate(ACTIONS))
    ours_allowed = sum(d.allowed(a) for d in decisions for a in ACTIONS)
    cedar_allowed = sum(a.allowed for a in answers)
    assert disagreements == 0 and ours_allowed == cedar_allowed, (disagreements, ours_allowed, cedar_allowed)

    edges = edge_facts(decisions, policy)
    memo.clear()
    ours_edge = [_lookup(policy, f)[1][a].allowed for f in edges for a in ACTIONS]
    edge_requests = [{"principal": f'Domain::"edge-{k}"', "action": f'Action::"{a}"', "resource": 'Registry::"main"',
                      "context": cedar_context(f)} for k, f in enumerate(edges) for a in ACTIONS]
    cedar_edge = [a.allowed for a in cedarpy.is_authorized_batch(edge_requests, policy_set, entities)]
    edge_disagreements = [(edges[i // len(ACTIONS)]["phase"], ACTIONS[i % len(ACTIONS)])
                          for i, (x, y) in enumerate(zip(ours_edge, cedar_edge)) if x != y]
    assert len(ours_edge) == len(cedar_edge) == len(edges) * len(ACTIONS)
    assert not edge_disagreements, edge_disagreements[:10]

    phases: dict[str, int] = {}
    for d in decisions:
        phases[d.phase] = phases.get(d.phase, 0) + 1
    ours_rate, rules_rate, cedar_rate = count / ours, count / rules_only, count / cedar
    return [
        ("domains / evidence records", f"{count:,} / {records:,} (built in {built:.1f} s)"),
        ("phases", ", ".join(f"{k} {v:,}" for k, v in sorted(phases.items()))),
        ("distinct rule inputs in the corpus", f"{distinct:,} of {count:,} domains (what a memo would hit)"),
        ("like for like (our memo cleared before every decision):", ""),
        ("  decide (facts+phase+rules+reasons)", f"{ours_rate:,.0f} decisions/s = {ours_rate * 7:,.0f} requests/s "
                                                 f"wall, {count / ours_cpu:,.0f} decisions per CPU-second"),
        ("  our rules only (CEL, facts given)", f"{rules_rate:,.0f} decisions/s = {rules_rate * 7:,.0f} requests/s"),
        ("  cedarpy, same rules, 7 requests each", f"{cedar_rate:,.0f} decisions/s = {cedar_rate * 7:,.0f} requests/s "
                                                   f"wall, {count / cedar_cpu:,.0f} decisions per CPU-second"),
        ("  cedarpy floor: one permit-all rule", f"{n_requests / floor:,.0f} requests/s (batch and context "
                                                 "conversion, no rule work)"),
        ("  ratio decide / cedarpy", f"{ours_rate / cedar_rate:.2f}x wall, {cedar_cpu / ours_cpu:.2f}x CPU"),
        ("  ratio rules only / cedarpy", f"{rules_rate / cedar_rate:.2f}x"),
        ("with our memo (a repeated rule input is not re-evaluated):", ""),
        ("  decide", f"{count / ours_memo:,.0f} decisions/s ({count / ours_memo / cedar_rate:.2f}x cedarpy)"),
        ("  rules only", f"{count / rules_memo:,.0f} decisions/s ({count / rules_memo / cedar_rate:.2f}x cedarpy)"),
        ("answers agreeing with cedarpy (asserted)", f"{n_requests:,} of {n_requests:,}; {ours_allowed:,} allowed "
                                                     "on both sides"),
        ("threshold-edge answers agreeing (asserted)", f"{len(ours_edge):,} of {len(ours_edge):,} ({len(edges):,} "
                                                       "fact sets at, below and above each threshold)"),
        ("load average (1 min)", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
    ]


# -- registry status cold start -----------------------------------------------------------------------

def populate(root: Path, n_domains: int, n_evidence: int) -> str:
    """Every record chained as the store writes it (see benchmarks/integrity.py)."""
    from integrity import populate_chained

    return populate_chained(root, n_domains, n_evidence)


def bench_status(n_domains: int, n_evidence: int) -> list[tuple[str, str]]:
    registry = Path(sys.executable).parent / "registry"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "registry").mkdir()
        t0 = time.perf_counter()
        url = populate(root, n_domains, n_evidence)
        setup = time.perf_counter() - t0
        env = {**os.environ, "REGISTRY_DB_URL": url, "GRADUATION_PROJECT": str(root)}
        argv = [str(registry), "status", "--json"]
        out = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"registry status failed: {out.stderr}")
        data = json.loads(out.stdout)
        assert len(data["decisions"]) == n_domains
        baseline = python_pass_time(5)
        ours = time_command(argv, repeat=5, cwd=root, env=env)
        baseline = (baseline + python_pass_time(5)) / 2
        listing = time_command([str(registry), "list", "--json"], repeat=5, cwd=root, env=env)
    return [
        ("domains / evidence records", f"{n_domains:,} / {n_evidence:,} (set up in {setup:.0f} s)"),
        ("python -c pass", f"{baseline * 1000:.0f} ms"),
        ("registry list --json (start-up floor)", f"{listing * 1000:.0f} ms ({listing / baseline:.1f}x python -c pass)"),
        ("registry status --json", f"{ours * 1000:.0f} ms ({ours / baseline:.1f}x python -c pass, "
                                   f"{ours / listing:.2f}x the floor; summaries read and checked, no file cache)"),
        ("under one second", "yes" if ours < 1.0 else "NO"),
    ]


def main() -> None:
    quick = "--quick" in sys.argv
    report("policy engine: decide vs cedarpy (same run, same machine)",
           bench_engine(1000 if quick else 10_000))
    report("registry status --json: a cold process each time, facts from the database's summaries",
           bench_status(100 if quick else 1000, 10_000 if quick else 100_000))


if __name__ == "__main__":
    main()
