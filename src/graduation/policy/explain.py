"""What a decision says in words: each criterion's unmet items with their numbers, and rules' reasons with the
facts filled in. Pure; rendered only when a decision is read (``ActionDecision.reasons`` / ``.unmet``).

    UNMET["data"](facts, phase, thresholds, None)  ->  ["SFT data: 40% of rows fail substance verifiers > 5% allowed"]
    render_reason(rule, facts)                     ->  the rule's reason, ``{eval.wilson_lower}`` filled in

Adding a criterion a rule may name: one function here, its entry in ``UNMET``, its name in
``graduation.policy.model.Criterion``.
"""

from __future__ import annotations

from typing import Any

from graduation.policy.model import Rule


# -- criteria ----------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x:.0%}" if x >= 0.01 or x == 0 else f"{x:.2%}"


def symbol_text(s: dict[str, Any]) -> str:
    where = f" of {s['file']}" if s.get("file") else ""
    return f"{s['symbol']} in {_pct(s['rate'])} of rows{where} ({s['rows']:,} rows)"


def verifier_unmet(facts: dict[str, Any]) -> list[str]:
    v = facts["verifiers"]
    if v["substance_validated"]:
        return []
    if v["substance"] == 0:
        return ["no substance verifier declared: nothing can tell right from wrong; write one before any training"]
    out = []
    if v["untrustworthy"]:
        out.append("untrustworthy verifier(s): " + ", ".join(v["untrustworthy"]) +
                   " (accept known-wrong controls or reject references)")
    if not v["validated"]:
        out.append("no validated substance verifier: validate " + (", ".join(v["unvalidated"]) or "one") +
                   " against references and controls")
    return out


def model_unmet(facts: dict[str, Any]) -> list[str]:
    m = facts["model"]
    if not m["ref"]:
        return ["no model named: deployment is decided for an artifact; pass --model NAME[@V]|sha256:HEX "
                "(or --model-path DIR)"]
    if not m["verified"]:
        return [f"model {m['ref']} has no verified digest ({m['digest_kind'] or 'unknown'}): register the artifact "
                "with `registry models register NAME --path DIR` (or --digest sha256:HEX)"]
    return []


def data_unmet(facts: dict[str, Any], t) -> list[str]:
    d = facts["data"]
    out = []
    if d["max_substance_fail_rate"] > t.max_data_fail_rate:
        out.append(f"SFT data: {_pct(d['max_substance_fail_rate'])} of rows fail substance verifiers > "
                   f"{_pct(t.max_data_fail_rate)} allowed")
    for s in d["symbols"]:
        out.append(f"SFT data: unsupported recurrent symbol {symbol_text(s)}; it never occurs in trusted ground truth")
    if d["ungraduated_generators"]:
        out.append("SFT data written by ungraduated model(s): " + ", ".join(d["ungraduated_generators"]))
    if d["lineage_depth"] > t.max_lineage_depth:
        out.append(f"SFT data lineage depth {d['lineage_depth']} > {t.max_lineage_depth} (copies of model-written copies)")
    return out


def signoff_unmet(facts: dict[str, Any], t, action: str | None = None) -> list[str]:
    s = facts["signoffs"]
    field_ = {"deploy:shadow": "shadow", "deploy:assisted": "assisted", "deploy:autonomous": "autonomous",
              "online:grpo": "online"}.get(action or "", "count")
    out = []
    model = facts["model"]["ref"] or "MODEL"
    if s[field_] < t.required_signoffs:
        have = f" (have: {', '.join(s['people'])})" if s["people"] else ""
        unbound = f"; {s['unbound']} sign-off(s) for another model, version, action or domain version do not count" \
            if s.get("unbound") else ""
        what = f" for {action}" if field_ != "count" else ""
        out.append(f"sign-offs{what} {s[field_]} < {t.required_signoffs} distinct people{have}{unbound}: `registry "
                   f"approve DOMAIN --model {model} --action {action or 'ACTION'} --by PRINCIPAL --role ROLE "
                   f"--key KEY`")
    wanted = [action] if action in ("deploy:shadow", "deploy:assisted", "deploy:autonomous", "online:grpo") \
        else ["deploy:assisted", "deploy:autonomous"]
    missing = [a for a in wanted if a not in s.get("approved", [a])]
    if missing:
        out.append(f"the policy's approvers (distinct principals per role, `approvers.require`) have not approved "
                   f"{', '.join(missing)} of {model}")
    return out


# Each criterion a rule may name (``policy.model.CRITERIA``) -> its unmet items: (facts, phase, thresholds, action).
UNMET = {
    "graduation": lambda facts, ph, t, action: list(ph.unmet),
    "verifiers": lambda facts, ph, t, action: verifier_unmet(facts),
    "data": lambda facts, ph, t, action: data_unmet(facts, t),
    "signoffs": lambda facts, ph, t, action: signoff_unmet(facts, t, action),
    "model": lambda facts, ph, t, action: model_unmet(facts),
}


# -- rendering reasons --------------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        if not value:
            return "none"
        return ", ".join(symbol_text(v) if isinstance(v, dict) and "symbol" in v else _fmt(v) for v in value)
    return str(value)


def render_reason(rule: Rule, facts: dict[str, Any]) -> str:
    text = rule.reason
    for ph in rule.placeholders:
        path, _, fmt = ph.partition("|")
        node: Any = facts
        for part in path.split("."):
            node = node[part]
        value = _pct(node) if fmt == "percent" and isinstance(node, (int, float)) else _fmt(node)
        text = text.replace("{" + ph + "}", value)
    return text


__all__ = ["UNMET", "data_unmet", "model_unmet", "render_reason", "signoff_unmet", "symbol_text",
           "verifier_unmet"]
