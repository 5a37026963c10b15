"""SSH signatures over what people approve, audit and retract: as git signs commits.

People are *principals* listed with their public keys in an OpenSSH ``allowed_signers`` file (namespace
``graduation``). A sign-off, a human audit or a retraction is a canonical JSON payload (built here, in one
place each) signed with ``ssh-keygen -Y sign -n graduation`` (a private key file, or a public key file
whose private half is in ssh-agent), and verified with the ``sshsig`` library against the keys listed for
the principal who claims it. No cryptography is written here.

    payload = signoff_payload(domain=..., domain_digest=..., actions=[...], decision_id=..., evidence_head=...,
                              principal=..., role=..., signed_at=now())
    signature = sign(message(payload), key_file)               # armored SSHSIG text
    fingerprint = verify(message(payload), signature, principal, signers)   # or raises SignatureError
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graduation.errors import InputError, SignatureError

NAMESPACE = "graduation"
SIGNOFF_TYPE = "graduation/signoff/v1"
AUDIT_TYPE = "graduation/human-audit/v1"
RETRACTION_TYPE = "graduation/retraction/v1"
PIN_TYPE = "graduation/policy-pin/v1"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def message(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are signed: canonical JSON of the payload."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signoff_payload(*, domain: str, domain_digest: str, actions: list[str], decision_id: str, evidence_head: str,
                    principal: str, role: str, signed_at: str, model: str | None = None,
                    model_digest: str | None = None, note: str | None = None,
                    basis: str | None = None) -> dict[str, Any]:
    """What a sign-off signs: the domain version (its spec's digest, and ``basis``: the evidence basis, which
    also covers its files), the model, the actions, the decision and evidence it saw."""
    return {"type": SIGNOFF_TYPE, "domain": domain, "domain_digest": domain_digest, "basis": basis, "model": model,
            "model_digest": model_digest, "actions": sorted(set(actions)), "decision_id": decision_id,
            "evidence_head": evidence_head, "principal": principal, "role": role, "signed_at": signed_at,
            "note": note}


def audit_payload(*, domain: str, domain_digest: str, auditor: str, scope: str, checked: int, held: int,
                  items: list[dict[str, Any]], signed_at: str, model: str | None = None,
                  model_digest: str | None = None, basis: str | None = None) -> dict[str, Any]:
    """What a human audit signs: the items and the person's verdict on each, and the model version whose
    outputs they are (``model`` NAME@V and its digest; None for an audit of no model's outputs)."""
    return {"type": AUDIT_TYPE, "domain": domain, "domain_digest": domain_digest, "basis": basis, "auditor": auditor,
            "scope": scope,
            "checked": checked, "held": held, "items": [{"id": i["id"], "verdict": i["verdict"]} for i in items],
            "model": model, "model_digest": model_digest, "signed_at": signed_at}


def retraction_payload(*, domain: str, evidence: str, record_hash: str, reason: str, by: str,
                       signed_at: str) -> dict[str, Any]:
    """What a retraction signs: the record it takes out of every decision, and why."""
    return {"type": RETRACTION_TYPE, "domain": domain, "evidence": evidence, "record_hash": record_hash,
            "reason": reason, "by": by, "signed_at": signed_at}


# -- allowed signers --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SignerKey:
    principal: str
    openssh: str
    fingerprint: str
    line: int


def parse_allowed_signers(text: str, file: str = "allowed_signers") -> dict[str, list[SignerKey]]:
    """principal -> keys that may sign in namespace ``graduation``. Raises ``InputError`` with file:line."""
    from sshsig.allowed_signers import AllowedSigner
    from sshsig.ssh_public_key import PublicKey

    out: dict[str, list[SignerKey]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = AllowedSigner.parse(line)
            key = PublicKey.from_openssh_str(f"{entry.key_type} {entry.base64_key}")
        except (ValueError, NotImplementedError, IndexError) as exc:
            raise InputError(f"{file}:{number}: not an allowed_signers line ({exc}); the format is "
                             "`alice@example.org namespaces=\"graduation\" ssh-ed25519 AAAA...`") from None
        options = entry.options or {}
        namespaces = options.get("namespaces")
        if namespaces is not None and NAMESPACE not in [n.strip() for n in str(namespaces).split(",")]:
            continue
        if any(name in options for name in ("cert-authority", "valid-after", "valid-before")):  # a bare flag too
            raise InputError(f"{file}:{number}: certificate authorities and validity windows are not supported; "
                             "list each person's own key")
        for principal in entry.principals.split(","):
            principal = principal.strip()
            if not principal:
                raise InputError(f"{file}:{number}: an empty principal (`alice,,bob`): name each person")
            if principal == "*" or "*" in principal or "?" in principal:
                raise InputError(f"{file}:{number}: wildcard principal {principal!r}: name each person")
            out.setdefault(principal, []).append(SignerKey(principal, key.openssh_str(), key.sha256_str(), number))
    return out


def verify(msg: bytes, signature: str, principal: str, signers: dict[str, list[SignerKey]]) -> str:
    """The SHA256 fingerprint of the key that signed ``msg``, if it is one of ``principal``'s keys."""
    import sshsig
    from sshsig.ssh_public_key import PublicKey

    keys = signers.get(principal)
    if not keys:
        raise SignatureError(f"{principal!r} is not in allowed_signers (namespace {NAMESPACE!r}): add their public "
                             "key there to let them sign")
    try:
        key = sshsig.verify(msg, signature, [PublicKey.from_openssh_str(k.openssh) for k in keys],
                            namespace=NAMESPACE)
    except Exception as exc:  # noqa: BLE001 - InvalidSignature, a malformed armor, an unsupported algorithm
        raise SignatureError(f"the signature is not valid for {principal!r} with any key allowed_signers lists for "
                             f"them ({type(exc).__name__}: {str(exc)[:120]})") from None
    return key.sha256_str()


def sign(msg: bytes, key_file: Path) -> str:
    """Sign with ``ssh-keygen -Y sign`` (a private key file, or a public key file whose key is in ssh-agent)."""
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise InputError("ssh-keygen (OpenSSH) is needed to sign; install openssh-client")
    key_file = Path(key_file)
    if not key_file.is_file():
        raise InputError(f"--key {key_file}: no such key file (a private key, or a public key held by ssh-agent)")
    proc = subprocess.run([exe, "-Y", "sign", "-n", NAMESPACE, "-q", "-f", str(key_file)], input=msg,
                          capture_output=True, timeout=60)
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        raise InputError(f"--key {key_file}: ssh-keygen could not sign: "
                         f"{proc.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return proc.stdout.decode("ascii")


__all__ = ["AUDIT_TYPE", "NAMESPACE", "PIN_TYPE", "RETRACTION_TYPE", "SIGNOFF_TYPE", "SignatureError", "SignerKey",
           "audit_payload", "message", "now", "parse_allowed_signers", "retraction_payload", "sign",
           "signoff_payload", "verify"]
