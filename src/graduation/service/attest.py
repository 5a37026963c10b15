"""The registry's own key, and DSSE envelopes signed with it (exported statements, audit checkpoints).

    registry keys init [--path FILE]        an Ed25519 key pair outside the database (0600 private PEM,
                                            FILE.pub public PEM); default registry/keys/registry-ed25519.pem,
                                            or GRADUATION_REGISTRY_KEY
    envelope = sign_statement(statement, key_path)         DSSE, payloadType application/vnd.in-toto+json
    checkpoint(session, key_path) -> envelope               the audit chain's head, signed
    verify_envelope(envelope, public_pem) -> payload dict   raises AttestationError (exit 1)

Signing and verification are securesystemslib's (``CryptoSigner``, ``dsse.Envelope``) over
``cryptography`` keys: nothing cryptographic is written here. A deploy pipeline keeps only the public
key and runs ``registry audit verify-attestation FILE --key registry-ed25519.pem.pub`` (see the README).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from graduation.errors import AttestationError, InputError
from graduation.store import audit as q
from graduation.store.auditlog import verify

ENV_KEY = "GRADUATION_REGISTRY_KEY"
DEFAULT_KEY = Path("registry") / "keys" / "registry-ed25519.pem"
INTOTO_PAYLOAD = "application/vnd.in-toto+json"
CHECKPOINT_PAYLOAD = "application/vnd.graduation.checkpoint+json"


def key_path(root: Path, path: Path | str | None = None) -> Path:
    if path is not None:
        return Path(path)
    if os.environ.get(ENV_KEY):
        return Path(os.environ[ENV_KEY])
    return Path(root) / DEFAULT_KEY


def public_path(private: Path) -> Path:
    return private.with_name(private.name + ".pub")


def init_key(path: Path, *, force: bool = False) -> tuple[Path, Path, str]:
    """Create an Ed25519 key pair: (private path, public path, keyid). Refuses to overwrite unless ``force``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path} exists: the registry already has a key (pass --force to replace it; statements "
                         "signed with the old key then verify only with the old public key)")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    public_path(path).write_bytes(public)
    return path, public_path(path), _sslib_key(key.public_key()).keyid


def _sslib_key(public_key):
    import hashlib

    from cryptography.hazmat.primitives import serialization
    from securesystemslib.signer import SSlibKey

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SSlibKey.from_crypto(public_key, keyid=hashlib.sha256(raw).hexdigest())


def _signer(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from securesystemslib.signer import CryptoSigner

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no registry key; create one with `registry keys init` (or point --key / "
                         f"{ENV_KEY} at it)")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path}: the registry key must be Ed25519")
    return CryptoSigner(key, _sslib_key(key.public_key()))


def sign_payload(payload: dict[str, Any], payload_type: str, private: Path) -> dict[str, Any]:
    """A DSSE envelope (as a dict) over the canonical JSON of ``payload``."""
    from securesystemslib.dsse import Envelope

    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    envelope = Envelope(body, payload_type, {})
    envelope.sign(_signer(private))
    return envelope.to_dict()


def sign_statement(statement: dict[str, Any], private: Path) -> dict[str, Any]:
    return sign_payload(statement, INTOTO_PAYLOAD, private)


def load_public(path: Path):
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise InputError(f"--key {path}: no such public key file") from None
    except OSError as exc:
        raise InputError(f"--key {path}: not readable ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"--key {path}: not a PEM public key ({exc})") from None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"--key {path}: a {type(key).__name__.removeprefix('_')}, not the registry's Ed25519 public "
                         "key (registry-ed25519.pem.pub)")
    return _sslib_key(key)


def verify_envelope(data: Any, public: Path) -> dict[str, Any]:
    """The envelope's payload, if a signature by ``public`` verifies over it; else ``AttestationError``."""
    from securesystemslib.dsse import Envelope

    key = load_public(public)
    try:
        envelope = Envelope.from_dict(data)
        envelope.verify([key], 1)
    except Exception as exc:  # noqa: BLE001 - malformed envelope, bad base64, a signature that fails
        raise AttestationError(f"the attestation does not verify with {public}: "
                               f"{type(exc).__name__}: {str(exc)[:200] or 'signature mismatch'}") from None
    try:
        return {"payloadType": envelope.payload_type, "payload": json.loads(envelope.payload)}
    except ValueError:
        raise AttestationError("the signed payload is not JSON") from None


def checkpoint(session, private: Path, anchor: Path | None = None) -> dict[str, Any]:
    """A signed checkpoint of the audit chain: its length and head hash, verified first (against ``anchor``,
    the registry's anchor file, when given: a log truncated with its anchor removed is not checkpointed)."""
    from datetime import datetime, timezone

    result = verify(session, anchor)
    if not result.ok:
        raise AttestationError(f"the audit log is broken at entry {result.bad_seq}: {result.problem}; "
                               "nothing to checkpoint")
    tail = q.tail(session)
    payload = {"type": "graduation/checkpoint/v1", "entries": result.entries,
               "head": {"seq": tail.seq, "entry_hash": tail.entry_hash} if tail is not None else None,
               "time": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
    return sign_payload(payload, CHECKPOINT_PAYLOAD, private)


__all__ = ["AttestationError", "CHECKPOINT_PAYLOAD", "DEFAULT_KEY", "ENV_KEY", "INTOTO_PAYLOAD", "checkpoint",
           "init_key", "key_path", "load_public", "public_path", "sign_payload", "sign_statement",
           "verify_envelope"]
