"""The decision log and the registry key: `audit verify|export|checkpoint|verify-attestation`, `keys init`.

Exit codes: 0 the check passed, 1 it failed (a changed, removed or reordered entry; a bad signature),
2 usage or input error.
"""

from __future__ import annotations

from pathlib import Path

import typer

from graduation.cli.app import EXIT_DENIED, EXIT_OK, JSON_OPTION, app, command, open_registry, print_json, state

audit_app = typer.Typer(help="The hash-chained decision log.", no_args_is_help=True)
keys_app = typer.Typer(help="The registry's own signing key.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")


# -- audit log ----------------------------------------------------------------------------------------

@command("verify", group=audit_app)
def audit_verify_cmd(
    ctx: typer.Context,
    as_json: bool = JSON_OPTION,
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="A checkpoint written by `registry audit "
                                           "checkpoint`: the log must extend it."),
) -> None:
    """Check the chain, every record row against its entry, the anchor (and a checkpoint): exit 1 naming
    the first changed, removed or reordered entry or record."""
    from graduation.store.auditlog import anchor_path, read_checkpoint, verify

    st = state(ctx)
    if checkpoint is not None:
        read_checkpoint(checkpoint)  # a bad file is bad input (exit 2), before the database is opened
    with open_registry(st) as db, db.read() as session:
        result = verify(session, anchor_path(st.root, db.url), checkpoint=checkpoint)
    if as_json:
        print_json(result.to_dict())
    else:
        from graduation.cli.output import error, info

        if result.ok:
            info(f"[green]ok[/]  audit log intact: {result.entries} entries")
        else:
            error(f"audit log broken at entry {result.bad_seq}: {result.problem}")
    raise typer.Exit(EXIT_OK if result.ok else EXIT_DENIED)


@command("export", group=audit_app)
def audit_export_cmd(
    ctx: typer.Context,
    decision: str = typer.Argument(..., help="Decision id (or 8+ leading hex digits), entry hash prefix, or #SEQ."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the envelope here instead of stdout."),
    key: Path | None = typer.Option(None, "--key", help="The registry's private key (default: "
                                    "registry/keys/registry-ed25519.pem or GRADUATION_REGISTRY_KEY)."),
    unsigned: bool = typer.Option(False, "--unsigned", help="Write the bare in-toto Statement, unsigned."),
) -> None:
    """Write a DSSE envelope, signed with the registry's key, of the in-toto Statement (SLSA Verification
    Summary predicate) for a recorded decision. `registry audit verify-attestation` checks it."""
    import json

    from graduation.service.attest import AttestationError, key_path, sign_statement
    from graduation.store.auditlog import anchor_path, find_decision, statement, verify

    st = state(ctx)
    with open_registry(st) as db, db.read() as session:
        entry = find_decision(session, decision)
        # the registry's key attests only what its log still holds: an entry edited in the database (or any
        # break in the chain, its records or its anchor) is never signed, as `audit checkpoint` never signs a
        # broken log
        result = verify(session, anchor_path(st.root, db.url))
        if not result.ok:
            raise AttestationError(f"the audit log is broken at entry {result.bad_seq}: {result.problem}; "
                                   "nothing is exported from it (`registry audit verify`)")
    document = statement(entry) if unsigned else sign_statement(statement(entry), key_path(st.root, key))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    from graduation.atomicfile import atomic_write_text

    atomic_write_text(out, text)
    from graduation.cli.output import info

    info(f"wrote {out} ({'statement' if unsigned else 'signed DSSE envelope'}, decision "
         f"{entry.payload.get('decision_id', '')[:12]}, audit entry #{entry.seq})")


@command("checkpoint", group=audit_app)
def audit_checkpoint_cmd(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write it here (keep it outside the database: git, "
                                    "object storage) instead of stdout."),
    key: Path | None = typer.Option(None, "--key", help="The registry's private key (see `registry keys init`); "
                                    "default registry/keys/registry-ed25519.pem or GRADUATION_REGISTRY_KEY."),
    unsigned: bool = typer.Option(False, "--unsigned", help="Write the bare checkpoint even when a key exists."),
    as_json: bool = JSON_OPTION,
) -> None:
    """A checkpoint of the audit chain (its length and head hash), verified first (exit 1 when the chain is
    broken): a DSSE envelope signed with the registry's key when there is one (`registry keys init`), else
    the bare checkpoint. `audit verify --checkpoint FILE` later proves the log extends either;
    `audit verify-attestation` checks the signature. Keep checkpoints outside the registry."""
    import json

    from graduation.service.attest import checkpoint as signed_checkpoint
    from graduation.service.attest import key_path
    from graduation.store.auditlog import anchor_path, checkpoint, verify

    st = state(ctx)
    private = key_path(st.root, key)
    sign = not unsigned and (key is not None or private.is_file())
    with open_registry(st) as db, db.read() as session:
        anchor = anchor_path(st.root, db.url)  # checked as `audit verify` checks it: a missing one fails closed
        if sign:
            data = signed_checkpoint(session, private, anchor)
        else:
            result = verify(session, anchor)
            if not result.ok:
                from graduation.service.attest import AttestationError

                raise AttestationError(f"the audit log is broken at entry {result.bad_seq}: {result.problem}; "
                                     "nothing to checkpoint")
            data = checkpoint(session, db.safe_url())
    text = json.dumps(data, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    from graduation.atomicfile import atomic_write_text

    atomic_write_text(out, text)
    if as_json:
        print_json(data)
        return
    from graduation.cli.output import info

    info(f"wrote {out} ({'signed checkpoint' if sign else 'unsigned checkpoint: `registry keys init` to sign'})")


@command("verify-attestation", group=audit_app)
def audit_verify_attestation_cmd(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A DSSE envelope from `registry audit export` or `audit checkpoint`.",
                                show_default=False),
    key: Path = typer.Option(..., "--key", help="The registry's PUBLIC key (registry-ed25519.pem.pub)."),
    digest: str | None = typer.Option(None, "--subject-digest", help="Also require this sha256 among the "
                                      "statement's subjects (e.g. the model's or the domain's digest)."),
    against_registry: bool = typer.Option(False, "--against-registry", help="Checkpoint: also require the "
                                          "registry's audit log to hold that head entry."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Verify an attestation's signature with the registry's public key. Exit 0 valid, 1 invalid."""
    import json

    from graduation.service.attest import CHECKPOINT_PAYLOAD, AttestationError, verify_envelope
    from graduation.errors import InputError

    try:
        data = json.loads(file.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{file}: no such file") from None
    except OSError as exc:
        raise InputError(f"{file}: not readable ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttestationError(f"{file}: not a JSON envelope ({exc})") from None
    result = verify_envelope(data, key)
    payload = result["payload"]
    if digest is not None:
        subjects = [s.get("digest", {}).get("sha256") for s in payload.get("subject", [])]
        if digest.lower() not in subjects:
            raise AttestationError(f"the attestation is valid but names no subject with sha256 {digest}")
    if against_registry and result["payloadType"] == CHECKPOINT_PAYLOAD:
        from graduation.store import audit as q

        head = payload.get("head") or {}
        with open_registry(state(ctx)) as db, db.read() as session:
            row = q.get(session, int(head.get("seq", 0)))
        if row is None or row.entry_hash != head.get("entry_hash"):
            raise AttestationError(f"the registry's audit log does not hold the checkpoint's head entry "
                                   f"#{head.get('seq')}: it was rewritten or truncated")
    if as_json:
        print_json({"valid": True, **result})
        return
    from graduation.cli.output import escape, info

    what = payload.get("predicate", {}).get("verificationResult") or payload.get("type", "")
    info(f"[green]ok[/]  {escape(str(file))}: signed by the registry key ({escape(result['payloadType'])}; "
         f"{escape(str(what))})")


@command("init", group=keys_app)
def keys_init_cmd(
    ctx: typer.Context,
    path: Path | None = typer.Option(None, "--path", help="Where the private key goes (default: "
                                     "registry/keys/registry-ed25519.pem, or GRADUATION_REGISTRY_KEY)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing key."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create the registry's Ed25519 key, outside the database: it signs exported attestations and checkpoints."""
    from graduation.service.attest import init_key, key_path

    st = state(ctx)
    private, public, keyid = init_key(key_path(st.root, path), force=force)
    if as_json:
        print_json({"private": str(private), "public": str(public), "keyid": keyid})
        return
    from graduation.cli.output import escape, info

    info(f"wrote {escape(str(private))} (private, mode 0600) and {escape(str(public))} (public; give it to "
         f"whoever verifies attestations); keyid {keyid[:16]}")
