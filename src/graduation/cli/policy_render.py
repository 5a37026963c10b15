"""Renderers of `registry status`: table, JSON, JUnit XML and SARIF (each denied action a failed check)."""

from __future__ import annotations

from typing import Any

from graduation.policy.model import ACTIONS

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SCHEMA_VERSION = 1


def status_json(results, policy, required: list[str], denied: list[tuple[str, str]], full: bool = True) -> dict[str, Any]:
    """The status document; ``full=False`` (many domains) lists evidence by count instead of by hash.

    Domains repeat the same unmet criteria (1,000 domains: 4,851 items, 247 distinct texts), so each distinct
    text is parsed by ``unmet_data`` once and copied: 42 ms instead of 69 for a 1,000-domain document.
    """
    decisions = []
    parsed: dict[str, dict[str, Any]] = {}  # unmet text -> unmet_data(text)
    for r in results:
        data = r.decision.to_dict()
        if not full:
            data["evidence_count"] = len(data.pop("evidence"))
        texts = list(r.decision.unmet) + [u for a in r.decision.actions.values() for u in a.unmet]
        data["unmet_criteria"] = [dict(parsed[u] if u in parsed else parsed.setdefault(u, unmet_data(u)))
                                  for u in dict.fromkeys(texts)]
        decisions.append({**data, "version": r.version, "content_hash": r.content_hash, "source_file": r.source_file})
    return {
        "schema_version": SCHEMA_VERSION,
        "policy": {"name": policy.name, "file": policy.file, "digest": policy.digest},
        "require": required, "ok": not denied,
        "denied": [{"domain": d, "action": a} for d, a in denied],
        "decisions": decisions,
    }


def status_table(results, policy, required: list[str], denied: list[tuple[str, str]], full: bool,
                 wide: bool = False) -> None:
    from graduation.cli.output import ID, TEXT, fit_table, info, show_wide

    if not results:
        info("no domains registered yet; run `registry register domains/`")
        return
    if full:
        r = results[0]
        info(f"policy {policy.name} ({policy.file}); {r.decision.domain} v{r.version}")
        trust = r.decision.facts.get("data_trust") or {}
        if trust:
            info(f"data trust: {'granted via the ' + trust['route'] + ' route' if trust.get('granted') else 'not granted'}"
                 + (f" (graduated models: {', '.join(trust['graduated_models'])})" if trust.get("graduated_models")
                    else ""))
        print(explain_once(r.decision))
    else:
        show_wide(fit_table(f"policy {policy.name}", [("domain", ID, 0), ("risk", ID, 1), ("phase", ID, 0),
                                                      ("allowed", TEXT, 0), ("next", TEXT, 2)],
                            [(r.decision.domain, r.decision.risk, r.decision.phase,
                              ", ".join(r.decision.allowed_actions) or "nothing", r.decision.recommendation)
                             for r in results], wide=wide), wide)
    shown: set[str] = set()
    for domain, action in denied:
        decision = next(r.decision for r in results if r.decision.domain == domain)
        d = decision.actions[action]
        common = set(decision.unmet) if domain in shown else set()
        own = [u for u in d.unmet if u not in common]
        why = "; ".join(list(d.reasons[:2]) + own[:8] + list(d.errors[:2])) or "no rule permits it"
        info(f"[red]denied[/] {domain} {action}: {why}")
        shown.add(domain)
    if required and not denied:
        info(f"[green]allowed[/] {', '.join(required)} for {len(results)} domain(s)")


def model_table(rows: list[dict]) -> None:
    """A row per model evaluated in a domain (its own phase: rounds of other models never move it)."""
    from graduation.cli.output import show, table

    show(table("models evaluated here", ["model", "digest", "phase", "rounds", "newest", "deploy allowed"],
               [(m["model"], (m["digest"] or m["digest_kind"])[:19], m["phase"], m["rounds"], m["newest"],
                 ", ".join(a.partition(":")[2] for a in m["deploy_allowed"]) or "-") for m in rows]))


def _checks(results, required: list[str]):
    for r in results:
        for action in (required or ACTIONS):
            yield r, action, r.decision.actions[action]


def _message(ad) -> str:
    parts = ad.why_lines()
    return "\n".join(parts) or "default deny: no permit rule applies"


def junit(results, required: list[str]) -> str:
    """JUnit XML: a test suite per domain, a test case per action; a denied action is a failure."""
    from xml.sax.saxutils import escape, quoteattr  # imported here: `status --json` need not load urllib
    suites = []
    total = failures = 0
    by_domain: dict[str, list] = {}
    for r, action, ad in _checks(results, required):
        by_domain.setdefault(r.decision.domain, []).append((r, action, ad))
    for domain, checks in by_domain.items():
        cases = []
        fails = 0
        for _r, action, ad in checks:
            name = quoteattr(action)
            if ad.allowed:
                cases.append(f'    <testcase classname={quoteattr("graduation." + domain)} name={name}/>')
            else:
                fails += 1
                kind = quoteattr(ad.effect)
                message = quoteattr((ad.reasons + ad.unmet + ad.errors + ("default deny",))[0])
                cases.append(f'    <testcase classname={quoteattr("graduation." + domain)} name={name}>\n'
                             f'      <failure type={kind} message={message}>{escape(_message(ad))}</failure>\n'
                             f'    </testcase>')
        total += len(checks)
        failures += fails
        suites.append(f'  <testsuite name={quoteattr(domain)} tests="{len(checks)}" failures="{fails}" errors="0">\n'
                      + "\n".join(cases) + "\n  </testsuite>")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<testsuites name="graduation" tests="{total}" failures="{failures}">\n' + "\n".join(suites)
            + "\n</testsuites>\n")


def sarif(results, required: list[str], policy) -> dict[str, Any]:
    """SARIF 2.1.0: one result per denied action, located at the domain file."""
    rules: dict[str, dict[str, Any]] = {}
    out = []
    for r, action, ad in _checks(results, required):
        if ad.allowed:
            continue
        rule_id = ad.rules[0] if ad.rules else ("rule-error" if ad.effect == "error" else "default-deny")
        rules.setdefault(rule_id, {"id": rule_id, "shortDescription": {"text": next(
            (x.reason for x in policy.rules if x.id == rule_id), "no permit rule applies (default deny)")}})
        out.append({
            "ruleId": rule_id,
            "level": "error" if (not required or action in required) else "warning",
            "message": {"text": f"{r.decision.domain}: {action} denied ({r.decision.phase}). {_message(ad)}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.source_file},
                                                "region": {"startLine": 1}}}],
            "properties": {"domain": r.decision.domain, "action": action, "phase": r.decision.phase,
                           "decision_id": r.decision.id, "rules": list(ad.rules)},
        })
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "graduation", "informationUri": "https://graduation.dev",
                            "rules": list(rules.values())}},
        "results": out}]}


def explain_once(decision) -> str:
    """The decision as text, with the domain's unmet criteria listed once, not again under every action."""
    from graduation.policy.model import ACTIONS

    common = list(dict.fromkeys(decision.unmet))
    who = f" / {decision.model['ref']}" if decision.model else ""
    route = f" via the {decision.route} route" if decision.route else ""
    lines = [f"{decision.domain}{who} (risk {decision.risk}): {decision.phase}{route}",
             f"recommendation: {decision.recommendation}"]
    if common:
        lines.append("unmet graduation criteria (listed once, not again under each action):")
        lines += [f"  - {u}" for u in common]
    lines += [f"  - error: {e}" for e in decision.errors]
    for action in ACTIONS:
        ad = decision.actions[action]
        how = (f"allowed by {', '.join(ad.rules)}" if ad.allowed else
               f"denied by {', '.join(ad.rules)}" if ad.rules else "denied (default deny: no permit rule applies)")
        lines.append(f"{action}: {how}")
        lines += [f"  - {r}" for r in ad.reasons]
        lines += [f"  - unmet: {u}" for u in ad.unmet if u not in common]
        lines += [f"  - error: {e}" for e in ad.errors]
    return "\n".join(lines)


_CRITERION = None


def unmet_data(text: str) -> dict[str, Any]:
    """An unmet criterion as data: ``{criterion, actual, required, round, text}`` (numbers when it states them).

    Criteria are worded ``<criterion> <actual> < <required> ... (<round>)``, e.g. ``samples 8 < 50 (r3)`` or
    ``human audit: 0 items checked < 50``; a criterion without numbers keeps ``actual``/``required`` null.
    """
    import re

    global _CRITERION
    if _CRITERION is None:
        _CRITERION = re.compile(r"^(?P<criterion>.*?)\s*(?P<actual>-?\d+(?:\.\d+)?)(?:\s+[a-z -]+?)?\s*"
                                r"(?P<op><=|>=|<|>)\s*(?P<required>-?\d+(?:\.\d+)?)")
    found = _CRITERION.match(text)
    round_ = re.search(r"[(,]\s*(?:r|round )(\d+)\b", text)  # "(r3", "(round 3", "..., round 3 of m@1)"
    data: dict[str, Any] = {"criterion": text.split(":")[0].strip(), "actual": None, "required": None,
                            "round": int(round_.group(1)) if round_ else None, "text": text}
    if found:
        data["criterion"] = found.group("criterion").rstrip(" :") or text.split(" ")[0]
        data["actual"] = _number(found.group("actual"))
        data["required"] = _number(found.group("required"))
        data["comparison"] = {"<": "at least", "<=": "more than", ">": "at most", ">=": "less than"}[found.group("op")]
    return data


def _number(text: str) -> float | int:
    return float(text) if "." in text else int(text)
