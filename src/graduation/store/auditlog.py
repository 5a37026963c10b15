"""The decision log: a hash chain of the decisions the registry relied on, and attestations of them.

Every entry holds ``prev_hash`` (the previous entry's hash; 64 zeros for the first) and
``entry_hash = sha256(canonical JSON of {seq, kind, domain, created_at, payload, prev_hash})``.
Changing any field of an entry breaks its own hash; removing or reordering entries breaks the
``seq`` sequence or the next entry's ``prev_hash``. Removing the newest entries leaves a shorter
chain that is still consistent, so each append also moves an anchor file (``registry/audit-head.json``)
forward; ``verify`` compares the chain with it.

    append(session, kind, payload, domain=None) -> AuditEntry      inside a write transaction
    record_decision(db, decision, action=..., context=..., anchor=...) -> AuditEntry
    verify(session, anchor=None) -> Verification                     names the first bad entry
    statement(entry) -> dict                                         in-toto Statement, SLSA VSA predicate

What a job launch should call: ``record_decision(db, decision, action="train:sft", context="jobs run",
anchor=anchor_path(project_root))``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graduation import __version__
from graduation.atomicfile import atomic_write_text
from graduation.errors import InputError, NotFoundError
from graduation.spec import canonical_json
from graduation.store import audit as q
from graduation.store.tables import AuditEntryRow

GENESIS = "0" * 64
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "https://graduation.dev/registry"
ANCHOR_FILE = "audit-head.json"


def canonical(payload: Any) -> str:
    return canonical_json(payload)


def compute_hash(seq: int, kind: str, domain: str | None, created_at: str, payload: Any, prev_hash: str) -> str:
    """``sha256_json`` of the entry {seq, kind, domain, created_at, payload, prev_hash}."""
    return stored_entry_hash(seq, kind, domain, created_at, canonical(payload), prev_hash)


def stored_entry_hash(seq: int, kind: str, domain: str | None, created_at: str, payload_json: str,
                      prev_hash: str) -> str:
    """The hash of an entry as stored: its payload's text hashed as it is, not decoded and encoded again.

    The canonical JSON of the entry written out key by key (sorted: the payload between kind and prev_hash).
    ``append`` stores the payload's canonical text, so an entry as written hashes as ``compute_hash`` says;
    any other payload text, even one that decodes the same, hashes differently. A status of 1,000 domains
    checks 5,000 entries (versions, summaries, sign-off and audit rows): 2 us each this way, 5 us decoded and
    encoded again.
    """
    enc = canonical_json
    text = (f'{{"created_at":{enc(created_at)},"domain":{enc(domain)},"kind":{enc(kind)},'
            f'"payload":{payload_json},"prev_hash":{enc(prev_hash)},"seq":{enc(seq)}}}')
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    kind: str
    domain: str | None
    created_at: str
    payload: dict[str, Any]
    prev_hash: str
    entry_hash: str

    @classmethod
    def from_row(cls, row) -> "AuditEntry":
        return cls(row.seq, row.kind, row.domain, row.created_at, json.loads(row.payload_json), row.prev_hash,
                   row.entry_hash)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def append(session, kind: str, payload: dict[str, Any], domain: str | None = None) -> AuditEntry:
    """Append one entry in the caller's write transaction (serialized against other appenders)."""
    if not kind or len(kind) > 32:
        raise InputError(f"audit entry kind {kind!r} must be 1..32 characters")
    q.lock_for_append(session)
    last = q.tail(session)
    seq = 1 if last is None else last.seq + 1
    prev = GENESIS if last is None else last.entry_hash
    created = _now()
    payload = json.loads(canonical(payload))  # exactly what is stored is what is hashed
    digest = compute_hash(seq, kind, domain, created, payload, prev)
    q.insert(session, AuditEntryRow(seq=seq, kind=kind, domain=domain, created_at=created,
                                    payload_json=canonical(payload), prev_hash=prev, entry_hash=digest))
    entry = AuditEntry(seq, kind, domain, created, payload, prev, digest)
    session.info["chain_tail"] = entry  # the database moves its anchor here once the transaction commits
    return entry


def decision_payload(decision, *, action: str | None, context: str, policy_file: str | None = None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the log keeps of a decision: enough to attest it without the database."""
    payload: dict[str, Any] = {
        "decision_id": decision.id, "domain": decision.domain, "domain_digest": decision.domain_digest,
        "risk": decision.risk, "phase": decision.phase, "route": decision.route or None,
        "policy": {"name": decision.policy_name, "digest": decision.policy_digest, "file": policy_file},
        "evidence": list(decision.evidence_hashes), "allowed_actions": decision.allowed_actions,
        "context": context, "action": action,
    }
    if decision.model:
        payload["model"] = {"ref": decision.model["ref"], "digest": decision.model["digest"],
                            "digest_kind": decision.model["digest_kind"]}
    if action is not None:
        ad = decision.actions[action]
        payload.update(allowed=ad.allowed, effect=ad.effect, rules=list(ad.rules), reasons=list(ad.reasons),
                       unmet=list(ad.unmet), errors=list(ad.errors))
    if extra:
        payload["extra"] = extra
    return payload


def record_decision(db, decision, *, action: str | None = None, context: str, policy_file: str | None = None,
                    anchor: Path | None = None, extra: dict[str, Any] | None = None) -> AuditEntry:
    """Append a decision that something relies on, in its own transaction; then move the anchor."""
    payload = decision_payload(decision, action=action, context=context, policy_file=policy_file, extra=extra)
    entry = db.transact(lambda session: append(session, "decision", payload, decision.domain))
    if anchor is not None:
        write_anchor(anchor, entry)
    return entry


# -- the anchor ---------------------------------------------------------------------------------------

def anchor_path(project_root: Path, db_url: str | None = None) -> Path:
    """The anchor file of the registry at ``db_url`` (the project's embedded one by default).

    Each database has its own anchor, so pointing ``--db`` at another registry never compares its
    log with the wrong head.
    """
    from graduation.store.engine import default_url  # lazy: store.engine imports this module

    from sqlalchemy.engine import make_url

    root = Path(project_root)
    if db_url is not None:
        db_url = make_url(db_url).render_as_string(hide_password=False)
    if db_url is None or db_url == default_url(root):
        return root / "registry" / ANCHOR_FILE
    digest = hashlib.sha256(db_url.encode()).hexdigest()[:12]
    return root / "registry" / f"audit-head-{digest}.json"


def write_anchor(path: Path, entry: AuditEntry) -> None:
    """Move the anchor to ``entry`` unless it already points at a later entry (concurrent appenders)."""
    import fcntl

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = read_anchor(path)
            if current is None or current[0] < entry.seq:
                atomic_write_text(path, json.dumps({"seq": entry.seq, "entry_hash": entry.entry_hash}) + "\n")
    except OSError as exc:  # the anchor or its lock replaced by a directory, a read-only file, ...
        raise InputError(f"{path}: the audit anchor could not be moved to entry {entry.seq} ({exc.strerror or exc}); "
                         "the entry is written: fix the file, then `registry audit verify`") from None


def read_anchor(path: Path) -> tuple[int, str] | None:
    try:
        data = json.loads(Path(path).read_text())
        seq, digest = data["seq"], data["entry_hash"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(digest, str):
            raise ValueError(f"seq {str(seq)[:40]!r} is not an entry number, or entry_hash is not text")
        return seq, digest
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise InputError(f"{path}: the audit anchor is unreadable ({exc}); it should hold "
                         '{"seq": N, "entry_hash": "..."}') from None


# -- verification -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    bad_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def verify_rows(rows, anchor: tuple[int, str] | None = None) -> Verification:
    """Walk the chain in seq order; stop at the first entry that does not hold."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for row in rows:
        count += 1
        if row.seq != expected_seq:
            if row.seq > expected_seq:
                missing = f"entry {expected_seq}" if row.seq == expected_seq + 1 else \
                    f"entries {expected_seq}..{row.seq - 1}"
                return Verification(False, count, expected_seq, f"{missing} removed: the log jumps from entry "
                                                                  f"{expected_seq - 1} to entry {row.seq}")
            return Verification(False, count, row.seq, f"entry {row.seq} is out of order")
        try:
            payload = json.loads(row.payload_json)
        except ValueError:
            return Verification(False, count, row.seq, f"entry {row.seq} changed: its payload is not valid JSON")
        if canonical(payload) != row.payload_json:
            return Verification(False, count, row.seq, f"entry {row.seq} changed: its payload is not the canonical "
                                                       "JSON that was hashed")
        if row.prev_hash != prev_hash:
            return Verification(False, count, row.seq, f"entry {row.seq} does not follow entry {row.seq - 1} "
                                                       "(its prev_hash differs): entries were reordered, removed "
                                                       "or changed")
        digest = compute_hash(row.seq, row.kind, row.domain, row.created_at, payload, row.prev_hash)
        if digest != row.entry_hash:
            return Verification(False, count, row.seq, f"entry {row.seq} changed: its content no longer matches "
                                                       "its hash")
        prev_hash = row.entry_hash
        expected_seq += 1
    if anchor is not None:
        seq, digest = anchor
        if count < seq:
            first = count + 1
            return Verification(False, count, first, f"entry {first} removed: the anchor records entry {seq}, "
                                                     f"the log ends at entry {count}")
    return Verification(True, count)


def verify(session, anchor: Path | None = None, *, checkpoint: Path | None = None,
           records: bool = True) -> Verification:
    """The chain, then every chained row against its entry, then the anchor and an outside checkpoint.

    With ``anchor`` given, a missing anchor file for a log that has entries fails (fail closed): an
    anchor deleted together with the newest entries must not read as "nothing to compare".
    """
    head = read_anchor(anchor) if anchor is not None else None
    result = verify_rows(q.entries(session), head)
    if not result.ok:
        return result
    if anchor is not None and head is None and result.entries:
        return Verification(False, result.entries, None, f"the audit anchor {Path(anchor).name} is missing while the "
                                                         f"log has {result.entries} entries: the log may have been "
                                                         "truncated or rewritten; compare it with a checkpoint "
                                                         "(`registry audit verify --checkpoint FILE`)")
    if head is not None:
        row = q.get(session, head[0])
        if row is not None and row.entry_hash != head[1]:
            return Verification(False, result.entries, head[0], f"entry {head[0]} differs from the anchor's hash: "
                                                                "the log was rewritten from there on")
    if checkpoint is not None:
        problem = _against_checkpoint(session, read_checkpoint(checkpoint), result.entries)
        if problem:
            return Verification(False, result.entries, problem[0], problem[1])
    if records:
        from graduation.store.chain import verify_records  # lazy: store.chain imports this module

        _checked, problems = verify_records(session)
        if problems:
            return Verification(False, result.entries, None, "; ".join(p.problem for p in problems[:5]) +
                                (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    return result


# -- checkpoints: (size, head hash) kept outside the database ---------------------------------------

CHECKPOINT_FORMAT = 1


def checkpoint(session, registry: str = "") -> dict[str, Any]:
    """The log's size and head hash, to keep outside the database (git, object storage).

    Unsigned: the ``signature`` field is absent until the registry has a key (signing is a separate step
    that adds it over ``checkpoint_body``).
    """
    last = q.tail(session)
    return {"format": CHECKPOINT_FORMAT, "registry": registry, "size": last.seq if last else 0,
            "head": last.entry_hash if last else GENESIS, "created_at": _now()}


def checkpoint_body(data: dict[str, Any]) -> str:
    """The canonical text a signature over a checkpoint covers (every field but ``signature``)."""
    return canonical({k: v for k, v in data.items() if k != "signature"})


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint file; write one with `registry audit checkpoint --out FILE`") \
            from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: the checkpoint is not readable JSON ({exc})") from None
    if isinstance(data, dict) and data.get("payloadType") == "application/vnd.graduation.checkpoint+json":
        # a signed checkpoint (`registry audit checkpoint` with the registry's key): its DSSE payload; the
        # signature itself is checked by `registry audit verify-attestation`
        import base64

        try:
            inner = json.loads(base64.b64decode(str(data.get("payload", "")), validate=True))
            head = inner["head"] or {"seq": 0, "entry_hash": GENESIS}
            data = {"format": CHECKPOINT_FORMAT, "size": head["seq"], "head": head["entry_hash"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: a signed checkpoint whose payload does not decode ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT or not isinstance(data.get("size"), int) \
            or isinstance(data.get("size"), bool) or data["size"] < 0 or not isinstance(data.get("head"), str) \
            or len(data["head"]) != 64:
        raise InputError(f"{path}: not a checkpoint of format {CHECKPOINT_FORMAT}; it should hold "
                         '{"format": 1, "size": N, "head": "<64 hex>"} as written by `registry audit checkpoint`')
    return data


def _against_checkpoint(session, data: dict[str, Any], entries: int) -> tuple[int | None, str] | None:
    size, head = data["size"], data["head"]
    if size == 0:
        return None if head == GENESIS else (None, "the checkpoint of an empty log names a head hash")
    if entries < size:
        return (entries + 1, f"the log has {entries} entries but the checkpoint records {size}: entries were removed")
    row = q.get(session, size)
    if row is None or row.entry_hash != head:
        return (size, f"entry {size} differs from the checkpoint's head hash: the log was rewritten and does not "
                      "extend the checkpoint")
    return None


# -- attestations -------------------------------------------------------------------------------------

def find_decision(session, ref: str) -> AuditEntry:
    """An entry by decision id (or a prefix of 8+ hex digits), entry hash prefix, or ``#seq``."""
    ref = ref.strip()
    number = ref.lstrip("#")
    if number.isascii() and number.isdigit() and (ref.startswith("#") or len(ref) < 8):
        # an entry number past what the database can hold names no entry (not an overflow in the driver)
        row = q.get(session, int(number)) if len(number) < 19 else None
        if row is None:
            raise NotFoundError(f"no audit entry #{number}; `registry audit verify` shows how many exist")
        return AuditEntry.from_row(row)
    if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref.lower()):
        raise InputError(f"decision reference {ref!r}: give a decision id (8+ hex digits) or #SEQ")
    rows = q.decisions(session, ref.lower()) or q.by_hash_prefix(session, ref.lower())
    if not rows:
        raise NotFoundError(f"no recorded decision {ref!r}; decisions are recorded by `registry status --require`, "
                            "`registry approve` and job launches")
    return AuditEntry.from_row(rows[0])


def statement(entry: AuditEntry) -> dict[str, Any]:
    """An in-toto Statement whose predicate follows the SLSA Verification Summary (VSA v1) shape."""
    if entry.kind != "decision":
        raise InputError(f"audit entry #{entry.seq} is a {entry.kind!r} entry, not a decision")
    try:
        return _statement(entry)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:
        # this registry writes every decision entry in one shape; another one was forged with its hash
        from graduation.errors import IntegrityError

        raise IntegrityError(f"audit entry #{entry.seq} is not a decision of the shape this registry writes "
                             f"({type(exc).__name__}: {exc}); run `registry audit verify`") from None


def _statement(entry: AuditEntry) -> dict[str, Any]:
    p = entry.payload
    if not isinstance(p, dict) or not isinstance(p.get("model") or {}, dict) \
            or not isinstance(p.get("policy") or {}, dict) \
            or not all(isinstance(p.get(k, []), list) for k in ("evidence", "allowed_actions", "rules", "reasons",
                                                                 "unmet")):
        raise ValueError("its payload's model, policy or lists are of another type")
    passed = bool(p.get("allowed")) if p.get("action") else bool(p.get("allowed_actions"))
    levels = [f"GRADUATION_PHASE_{str(p.get('phase')).upper()}"]
    if p.get("action"):
        levels.append(f"GRADUATION_{'ALLOWED' if p.get('allowed') else 'DENIED'}_{p['action']}")
    else:
        levels += [f"GRADUATION_ALLOWED_{a}" for a in p.get("allowed_actions", [])]
    policy = p.get("policy") or {}
    model = p.get("model") or {}
    if model.get("digest"):
        # the artifact deployed is the subject; the domain is what it was verified in
        subject = [{"name": str(model.get("ref")), "digest": {"sha256": str(model["digest"]).partition(":")[2]}}]
        resource = f"graduation:model/{model.get('ref')}"
    else:
        subject = [{"name": f"domain/{p.get('domain')}", "digest": {"sha256": p.get("domain_digest", "")}}]
        resource = f"graduation:domain/{p.get('domain')}"
    return {
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": VSA_TYPE,
        "predicate": {
            "verifier": {"id": VERIFIER_ID, "version": {"graduation": __version__}},
            "timeVerified": entry.created_at,
            "resourceUri": resource,
            "policy": {"uri": f"graduation:policy/{policy.get('name')}" + (f"?file={policy['file']}" if policy.get("file")
                                                                          else ""),
                       "digest": {"sha256": policy.get("digest", "")}},
            "inputAttestations": [{"uri": f"graduation:evidence/{h}", "digest": {"sha256": h}}
                                  for h in p.get("evidence", [])],
            "verificationResult": "PASSED" if passed else "FAILED",
            "verifiedLevels": levels,
            "slsaVersion": "1.0",
            "domain": {"name": p.get("domain"), "version_digest": p.get("domain_digest")},
            "decision": {"id": p.get("decision_id"), "action": p.get("action"), "phase": p.get("phase"),
                         "model": model.get("ref"), "rules": p.get("rules", []), "reasons": p.get("reasons", []),
                         "unmet": p.get("unmet", []), "audit_entry": {"seq": entry.seq, "sha256": entry.entry_hash}},
        },
    }


__all__ = ["CHECKPOINT_FORMAT", "checkpoint", "checkpoint_body", "read_checkpoint", "ANCHOR_FILE", "AuditEntry", "GENESIS", "Verification", "anchor_path", "append", "canonical",
           "compute_hash", "decision_payload", "find_decision", "read_anchor", "record_decision", "statement",
           "stored_entry_hash", "verify", "verify_rows", "write_anchor"]
