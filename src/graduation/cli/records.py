"""Evidence records: `evidence add|retract|list` (and `registry evidence DOMAIN`, which lists them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from graduation.cli.app import JSON_OPTION, POLICY_OPTION, app, command, print_json, state
from graduation.cli.options import DOMAIN_ARG, TIMEOUT_OPTION, UNSANDBOXED_OPTION, verifier_pool
from graduation.errors import InputError


class _EvidenceGroup(TyperGroup):
    """`registry evidence DOMAIN` means `registry evidence list DOMAIN`."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


evidence_app = typer.Typer(cls=_EvidenceGroup, no_args_is_help=True,
                           help="Evidence records of a domain: `registry evidence DOMAIN` lists them.")
app.add_typer(evidence_app, name="evidence")


@command("add", group=evidence_app)
def evidence_add_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    kind: str = typer.Option(..., "--kind", help="human_audit or signoff."),
    by: str | None = typer.Option(None, "--by", help="Who audited or signed (a person's name or email)."),
    role: str | None = typer.Option(None, "--role", help="Signoff: the signer's role."),
    checked: int | None = typer.Option(None, "--checked", min=0, help="Human audit: items checked."),
    held: int | None = typer.Option(None, "--held", min=0, help="Human audit: items found correct."),
    items: Path | None = typer.Option(None, "--items", help="Human audit: JSONL of per-item verdicts "
                                      "(id, verdict pass|fail, and output to re-verify or verifier_verdict)."),
    scope: str = typer.Option("outputs", "--scope", help="Human audit: outputs or ground_truth."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="NAME[@V]|sha256:HEX",
                                     help="Human audit of outputs: the registered model that wrote them (only "
                                          "then does the audit count toward that model's graduation)."),
    note: str | None = typer.Option(None, "--note", help="A free-text note."),
    key: Path | None = typer.Option(None, "--key", help="The person's SSH key (a private key file, or a public "
                                    "key held by ssh-agent): signs the sign-off, or the audit's items and "
                                    "verdicts. Unsigned ones do not count at high and critical risk."),
    action: list[str] = typer.Option([], "--action", "-a", metavar="ACTION", help="Signoff: what is approved."),
    timeout: float = TIMEOUT_OPTION,
    unsandboxed: bool = UNSANDBOXED_OPTION,
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Record what people checked by hand (human_audit) or approved (signoff), signed with --key."""
    from graduation.service import approvals
    from graduation.policy.model import load_policy
    from graduation.records import HumanAuditRecord

    st = state(ctx)
    if not by or not by.strip():
        raise InputError("--by is required: name the person who audited or signed")
    if kind not in ("signoff", "human_audit"):
        raise InputError(f"--kind must be human_audit or signoff, got {kind!r} (eval and data_audit evidence "
                         "come from `registry evaluate` and `registry audit-data`)")
    policy = load_policy(policy_file, st.root)
    if kind == "signoff":
        if not role or not role.strip():
            raise InputError("a signoff needs --role (e.g. --role clinical-lead)")
        from graduation.cli.policy import _check_action

        if model is not None:
            recorded = approvals.signoff(st.database(), st.root, policy, domain, by=by, role=role, key=key,
                                         actions=[_check_action(a) for a in action], model=model, note=note,
                                         context="evidence add")
        else:  # bound to nothing: recorded (and screened) but counted for no gate
            if action:
                raise InputError("--action binds a sign-off to a model: name the model too (--model NAME@V), or "
                                 "use `registry approve DOMAIN --model M --action A --key KEY`")
            recorded = approvals.unbound_signoff(st.database(), policy, domain, by=by, role=role, note=note, key=key)
        record: Any = recorded.evidence.record
    elif kind == "human_audit":
        if scope not in ("outputs", "ground_truth"):
            raise InputError(f"--scope must be outputs or ground_truth, got {scope!r}")
        record = _human_audit(st, domain, by.strip(), checked, held, items, scope, note, timeout, unsandboxed)
        assert isinstance(record, HumanAuditRecord)
    else:
        raise InputError(f"--kind must be human_audit or signoff, got {kind!r} (eval and data_audit evidence "
                         "come from `registry evaluate` and `registry audit-data`)")
    if kind == "human_audit":
        model_id = None
        if model is not None:
            from graduation.store.models import resolve_model

            with st.database().read() as session:
                model_id = resolve_model(session, model).id
        recorded = approvals.human_audit(st.database(), st.root, policy, domain, record, key=key, model_id=model_id)
        record = recorded.evidence.record
    stored = recorded.evidence
    if as_json:
        print_json({**stored.to_dict(), "audit_entry": recorded.entry.seq})
        return
    from graduation.cli.output import escape, info

    signed = getattr(record, "signed", None)
    info(f"recorded {kind} {stored.uid[:12]} for {escape(domain)} v{stored.domain_version} by "
         f"{escape(by.strip())} ({'signed, key ' + signed.fingerprint if signed else 'UNSIGNED'})")
    if kind == "signoff" and not getattr(record, "model", None):
        info("note: this sign-off is bound to no model or action, so no gate counts it; `registry approve DOMAIN "
             "--model M --action deploy:assisted --key KEY` records one that does")
    if kind == "human_audit":
        agreement = record.agreement
        info(f"checked {record.checked}, held {record.held}"
             + (f", verifier agreement {agreement:.1%}" if agreement is not None else ""))


def _human_audit(st, domain: str, by: str, checked: int | None, held: int | None, items_file: Path | None,
                 scope: str, note: str | None, timeout: float, unsandboxed: bool = False):
    from graduation.records import HumanAuditRecord

    if items_file is None:
        if checked is None or held is None:
            raise InputError("a human audit needs --checked N --held M, or --items FILE with per-item verdicts")
        if held > checked:
            raise InputError(f"--held {held} is more than --checked {checked}")
        return HumanAuditRecord(auditor=by, checked=checked, held=held, scope=scope, note=note)
    from graduation.service.data_audit import human_audit_items

    with verifier_pool(None, timeout, unsandboxed) as pool:
        items = human_audit_items(st.database(), st.root, domain, items_file, pool=pool)
    from graduation.evidence import agreement

    passed = sum(i.verdict == "pass" for i in items)
    if checked is not None and checked != len(items) or held is not None and held != passed:
        raise InputError(f"--checked/--held disagree with {items_file}: it holds {len(items)} items, "
                         f"{passed} judged pass; omit the counts or fix them")
    return HumanAuditRecord(auditor=by, checked=len(items), held=passed, scope=scope, items=items,
                            agreement=agreement(items), note=note)


@command("retract", group=evidence_app)
def evidence_retract_cmd(
    ctx: typer.Context,
    evidence: str = typer.Argument(..., help="The record's uid (or 8+ leading hex digits).", show_default=False),
    reason: str = typer.Option(..., "--reason", help="Why it no longer counts (e.g. a wrong human audit)."),
    by: str = typer.Option(..., "--by", help="Who retracts it: a principal of allowed_signers."),
    key: Path | None = typer.Option(None, "--key", help="Their SSH key; required at high and critical risk."),
    as_json: bool = JSON_OPTION,
    policy_file: Path | None = POLICY_OPTION,
) -> None:
    """Take a record out of every decision without deleting it (signed, and chained in the audit log).

    Exit 1 when the retraction is refused (unsigned at high or critical risk, a key not allowed for --by).
    """
    from graduation.service.approvals import retract
    from graduation.policy.model import load_policy

    st = state(ctx)
    policy = load_policy(policy_file, st.root)
    recorded = retract(st.database(), st.root, policy, evidence, reason=reason, by=by, key=key)
    if as_json:
        print_json({**recorded.evidence.to_dict(), "audit_entry": recorded.entry.seq})
        return
    from graduation.cli.output import escape, info

    rec = recorded.evidence.record
    info(f"retracted {rec.evidence[:12]} of {escape(recorded.evidence.domain)} by {escape(rec.by)} "
         f"({'signed' if rec.signed else 'UNSIGNED'}): {escape(rec.reason)}; audit entry #{recorded.entry.seq}")


@command("list", group=evidence_app)
def evidence_list_cmd(
    ctx: typer.Context,
    domain: str = DOMAIN_ARG,
    kind: str | None = typer.Option(None, "--kind", help="Only this kind of evidence."),
    all_bases: bool = typer.Option(False, "--all", help="Include evidence of earlier verifier/ground-truth "
                                   "bases (by default only the current basis counts)."),
    as_json: bool = JSON_OPTION,
    wide: bool = typer.Option(False, "--wide", help="Show every column, even when wider than the terminal."),
) -> None:
    """List a domain's evidence, oldest first."""
    from graduation.records import EVIDENCE_KINDS
    from graduation.store.domains import get_version
    from graduation.store.evidence import list_evidence

    if kind is not None and kind not in EVIDENCE_KINDS:
        raise InputError(f"--kind {kind!r} is not an evidence kind; use one of {', '.join(EVIDENCE_KINDS)}")
    with state(ctx).database().read() as session:
        current = get_version(session, domain)
        found = list_evidence(session, domain, basis_hash=None if all_bases else current.basis_hash,
                              kinds=[kind] if kind else None)
    if as_json:
        print_json({"domain": domain, "version": current.version, "basis_hash": current.basis_hash,
                    "evidence": [e.to_dict() for e in found]})
        return
    from graduation.cli.output import info
    from graduation.records import iso

    if not found:
        info(f"no evidence for {domain} (basis {current.basis_hash[:12]}) yet; run `registry evaluate` or "
             "`registry audit-data`")
        return
    from graduation.cli.output import ID, NUM, TEXT, fit_table, show_wide

    show_wide(fit_table(f"evidence of {domain}", [("uid", ID, 0), ("kind", ID, 0), ("created", ID, 1),
                                                  ("version", NUM, 3), ("model", ID, 2), ("round", NUM, 4),
                                                  ("summary", TEXT, 5)],
                        [(e.uid[:12], e.kind, iso(e.created_at), e.domain_version, e.model, e.round,
                          e.record.summary_line()) for e in found], wide=wide), wide)
