"""Every fact a policy condition may read, with its CEL type and meaning (``FACT_SCHEMA``); example facts of
every declared type, to type-check conditions when a policy loads; and the list `registry policy facts` prints.
"""

from __future__ import annotations

from typing import Any

# A symbol flag as CEL sees it: {symbol, rate, rows, file}.
SYMBOL = {
    "symbol": ("string", "The identifier that recurs but never occurs in trusted ground truth."),
    "rate": ("double", "Fraction of rows (or outputs) carrying it."),
    "rows": ("int", "How many rows carry it."),
    "file": ("string", "The scanned file (data audits) or the outputs file (evals); may be empty."),
}

#: Every fact a condition may use: ``{name: (type, doc)}`` or ``{name: {...}}`` for a map.
#: Types: string, int, double, bool, list<string>, list<symbol> (each element a SYMBOL map).
FACT_SCHEMA: dict[str, Any] = {
    "domain": {
        "name": ("string", "The domain's name."),
        "risk": ("string", "low | medium | high | critical."),
        "risk_rank": ("int", "0 low, 1 medium, 2 high, 3 critical."),
        "target": ("string", "The deployment mode the team aims for (sandbox .. autonomous)."),
        "slices": ("list<string>", "Declared slices; each must meet the bar on its own."),
        "external_sources": ("list<string>", "Audited ground-truth sources with authoritative/expert provenance."),
        "ungraduated_generators": ("list<string>", "Models that wrote ground truth while not graduated here."),
        "lineage_depth": ("int", "Most generations of model-written copies behind any ground-truth source."),
    },
    "verifiers": {
        "substance": ("int", "Declared substance verifiers."),
        "format": ("int", "Declared format verifiers."),
        "validated": ("list<string>", "Substance verifiers whose newest validation is trustworthy."),
        "untrustworthy": ("list<string>", "Verifiers (any role) whose newest validation failed (accepted controls "
                                          "or rejected references)."),
        "unvalidated": ("list<string>", "Declared substance verifiers with no validation record yet, or whose "
                                        "validation rejected too few meaningful controls to show they can fail."),
        "substance_validated": ("bool", "At least one substance verifier is validated and none is untrustworthy."),
        "references_verified": ("bool", "Every validated substance verifier accepted all references it was given."),
    },
    "model": {
        "ref": ("string", "NAME@V of the model decided for; '' when deciding for the domain alone (training)."),
        "name": ("string", "Its name ('' without a model)."),
        "version": ("int", "Its version (0 without a model)."),
        "digest": ("string", "sha256:HEX of the artifact ('' when unknown)."),
        "digest_kind": ("string", "manifest (files hashed here) | external (digest given) | unverified | ''."),
        "refused_data": ("bool", "Its lineage says it was trained on data the registry refused (a sandbox-only "
                                 "experiment, `trained_on_refused_data`): never deployable."),
        "verified": ("bool", "The artifact is known by a digest (manifest or external); unverified models "
                             "carried over from free-text names are not."),
    },
    "data_trust": {
        "granted": ("bool", "The domain's ground truth may be copied by SFT: the external or internal route holds."),
        "route": ("string", "external (audited authoritative/expert sources, validated verifier) | internal "
                            "(verified rounds of a model graduated here) | ''."),
        "graduated_models": ("list<string>", "Models (NAME@V) graduated in this domain by their own rounds."),
    },
    "models": {
        "evaluated": ("list<string>", "Models (NAME@V) with evaluation rounds in the current basis."),
        "graduated": ("list<string>", "Those graduated in this domain."),
    },
    "eval": {
        "rounds": ("int", "Evaluation rounds (eval and training_round records) of the model decided for (of every "
                          "model when deciding for the domain)."),
        "generated_rounds": ("int", "Of those, rounds whose outputs the registry sampled from the registered "
                                    "artifact itself (`evaluate --generate`, training jobs)."),
        "n": ("int", "Items (prompt x sample) verified in the newest round (0 without rounds)."),
        "prompts": ("int", "Distinct registered eval prompts counted in the newest round (the unit of min_samples)."),
        "coverage": ("double", "Newest round's distinct prompts / registered eval prompts."),
        "overlap_rate": ("double", "Registered eval prompts that also occur in training sources (same text after "
                                   "normalising case and whitespace), as a fraction (newest round); they never count."),
        "ngram_overlap_rate": ("double", "Registered eval prompts sharing a 13-word n-gram with a training prompt "
                                         "(lm-eval's decontamination rule), as a fraction (newest round)."),
        "uncounted": ("list<string>", "Substance verifiers untrustworthy or unvalidated when the newest round was "
                                      "scored (such a round never counts)."),
        "passed": ("int", "Items passing every substance verifier in the newest round."),
        "pass_rate": ("double", "Newest round's pass rate."),
        "wilson_lower": ("double", "Newest round's Wilson 95% lower bound over distinct prompts."),
        "shape_gap": ("double", "Newest round's format pass rate minus substance pass rate."),
        "has_consistency": ("bool", "Whether the newest round sampled k answers per prompt."),
        "pass_k": ("double", "Newest round's pass^k (all k samples correct); 0.0 when not measured."),
        "flip_rate": ("double", "Newest round's rate of prompts whose answers flip; 0.0 when not measured."),
        "symbols": ("list<symbol>", "Unsupported recurrent symbols in the newest round's outputs."),
    },
    "data": {
        "audits": ("int", "Candidate SFT datasets scanned (newest audit per file)."),
        "files": ("list<string>", "Those files."),
        "max_substance_fail_rate": ("double", "Highest fraction of rows failing substance verifiers."),
        "symbols": ("list<symbol>", "Unsupported recurrent symbols found in any of them."),
        "lineage_depth": ("int", "Deepest lineage of any scanned dataset or ground-truth source."),
        "ungraduated_generators": ("list<string>", "Ungraduated models that wrote scanned data or ground truth."),
        "untrusted": ("list<string>", "Scanned files whose provenance is not trusted."),
        "unaudited": ("list<string>", "Model-generated ground-truth sources with no data audit of their current "
                                      "content (`registry audit-data`)."),
    },
    "human": {
        "audits": ("int", "Human audit records."),
        "checked": ("int", "Items people checked, in all."),
        "held": ("int", "Items people found correct."),
        "held_rate": ("double", "held / checked (0.0 when nothing was checked)."),
    },
    "signoffs": {
        "count": ("int", "Distinct people whose sign-offs bind this domain version and the model decided for."),
        "people": ("list<string>", "Their names."),
        "roles": ("list<string>", "Their roles (distinct)."),
        "shadow": ("int", "Distinct people who approved deploy:shadow of this model in this domain version."),
        "assisted": ("int", "Distinct people who approved deploy:assisted of this model in this domain version."),
        "autonomous": ("int", "Distinct people who approved deploy:autonomous of this model in this domain version."),
        "online": ("int", "Distinct people who approved online:grpo of this model in this domain version."),
        "unbound": ("int", "Sign-offs that do not count here: for another model, version, action or domain "
                           "version, or with no binding at all (older records)."),
        "unsigned": ("int", "How many of the people counted signed off without a signature (only at the risk "
                            "levels the policy's `approvers.unsigned` allows; signatures are verified by the "
                            "registry before the policy sees any sign-off)."),
        "approved": ("list<string>", "Actions for which the policy's `approvers.require` at this risk (distinct "
                                     "principals per role, counting sign-offs bound to this domain version and "
                                     "model for that action) is met; every action when it requires nothing."),
    },
    "graduation": {
        "route": ("string", "external | internal | '' (not graduated)."),
        "meets_bar": ("bool", "The newest round meets every per-round criterion."),
        "stable_rounds": ("int", "Consecutive newest rounds meeting the bar."),
        "required_rounds": ("int", "Stable rounds the risk level requires."),
        "failing_slices": ("list<string>", "Declared slices that miss the bar in the newest round."),
        "was_graduated": ("bool", "An earlier window of rounds met the bar (internal route)."),
        "regression_p": ("double", "One-sided exact p-value: newest round worse than the graduating window "
                                   "(1.0 when not tested: no newer round, or it passes at least as often)."),
        "human_audit_ok": ("bool", "Human audit requirement of the risk level met."),
        "unmet": ("list<string>", "Graduation criteria not met, with their numbers."),
    },
    "phase": ("string", "discovery | candidate | graduated | regressed."),
    "thresholds": {
        "min_wilson_lower": ("double", "Wilson lower bound the pass rate must reach."),
        "min_samples": ("int", "Distinct prompts per round (samples of one prompt are one unit)."),
        "min_coverage": ("double", "Fraction of the registered eval prompts a round must cover."),
        "stable_rounds": ("int", "Consecutive rounds meeting the bar."),
        "max_shape_gap": ("double", "Largest allowed format-minus-substance gap."),
        "min_human_audit": ("int", "Items a person must have checked."),
        "min_human_held_rate": ("double", "Fraction of them that must hold."),
        "required_signoffs": ("int", "Distinct people who must sign off before assisted/autonomous deployment."),
        "max_lineage_depth": ("int", "Deepest allowed lineage of SFT data."),
        "min_pass_k": ("double", "pass^k consistency required (0.0: not required)."),
        "max_data_fail_rate": ("double", "Largest fraction of SFT rows allowed to fail substance verifiers."),
        "regression_alpha": ("double", "Significance level of the regression test."),
    },
}


def example_facts(variant: int) -> dict[str, Any]:
    """Facts of every field with a value of its declared type (for type-checking conditions at load).

    ``variant`` 0 gives zero values and empty lists, 1 non-zero values and one-element lists.
    """
    def value(kind: str) -> Any:
        full = variant == 1
        if kind == "string":
            return "graduated" if full else ""
        if kind == "int":
            return 1 if full else 0
        if kind == "double":
            return 0.5 if full else 0.0
        if kind == "bool":
            return full
        if kind == "list<string>":
            return ["x"] if full else []
        if kind == "list<symbol>":
            return [{k: value(t) for k, (t, _doc) in SYMBOL.items()}] if full else []
        raise ValueError(kind)

    def build(node: Any) -> Any:
        if isinstance(node, tuple):
            return value(node[0])
        return {k: build(v) for k, v in node.items()}

    return {k: build(v) for k, v in FACT_SCHEMA.items()}


def describe_facts() -> list[tuple[str, str, str]]:
    """(path, type, doc) of every fact, for `registry policy facts` and the docs."""
    out: list[tuple[str, str, str]] = []

    def walk(prefix: str, node: Any) -> None:
        for key, sub in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(sub, tuple):
                out.append((path, sub[0], sub[1]))
            else:
                walk(path, sub)

    walk("", FACT_SCHEMA)
    for key, (kind, doc) in SYMBOL.items():
        out.append((f"<symbol>.{key}", kind, doc))
    return out


__all__ = ["FACT_SCHEMA", "SYMBOL", "describe_facts", "example_facts"]
