"""Evidence record schemas: the contract between what gathers evidence and what decides on it.

Each evidence row in the registry has a ``kind`` and a JSON ``summary`` that validates as one of the
models below. Records are immutable once stored. Rates are fractions in [0, 1].

    kind                 model                        written by
    eval                 EvalRecord                   `registry evaluate`
    training_round       EvalRecord (job, step set)   `registry jobs run`, every evaluation round
    data_audit           DataAuditRecord              `registry audit-data`
    verifier_validation  VerifierValidationRecord     verifier checks against references and controls
    human_audit          HumanAuditRecord             `registry evidence add --kind human_audit`
    signoff              SignoffRecord                `registry approve` / `evidence add --kind signoff`
    retraction           RetractionRecord             `registry evidence retract ID --reason TEXT`

Sign-offs, human audits and retractions may carry an SSH signature (``Signed``) over a canonical
payload (``graduation.signing``); the registry verifies it against ``allowed_signers`` each time it
counts them, so a row edited in the database stops counting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from graduation.spec import DomainSpec

class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def summary_line(self) -> str:
        """One line for listings (``registry evidence DOMAIN``): what this record says."""
        return ""


class VerifierStats(Record):
    name: str
    role: Literal["substance", "format"]
    kind: str
    version: str = "1"
    total: int = Field(ge=0)
    passed: int = Field(ge=0)
    failed: int = Field(ge=0)
    errors: int = Field(ge=0)
    pass_rate: float = Field(ge=0, le=1)


class SliceStats(Record):
    name: str
    n: int = Field(ge=0)
    passed: int = Field(ge=0)
    pass_rate: float = Field(ge=0, le=1)
    wilson_lower: float = Field(ge=0, le=1)
    substance_pass_rate: float = Field(0.0, ge=0, le=1)
    format_pass_rate: float = Field(0.0, ge=0, le=1)


class SymbolFlag(Record):
    """An identifier that recurs in outputs or data but never occurs in trusted ground truth."""

    symbol: str
    rows: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)
    examples: list[str] = Field(default_factory=list, description="A few row ids or line numbers.")


class Consistency(Record):
    """Agreement of k samples per prompt: a stable pattern answers the same way every time."""

    k: int = Field(ge=1)
    prompts: int = Field(ge=0)
    pass_at_1: float = Field(ge=0, le=1)
    pass_all_k: float = Field(ge=0, le=1, description="pass^k: fraction of prompts with all k samples correct.")
    flip_rate: float = Field(ge=0, le=1, description="Fraction of prompts whose samples disagree "
                                                     "(in verdict or in extracted label).")


class EvalRecord(Record):
    """Verified model outputs on held-out prompts (kind eval, or training_round when a job wrote it)."""

    model: str
    round: int | None = None
    outputs_file: str | None = None
    n: int = Field(ge=0, description="Items verified (prompt x sample).")
    passed: int = Field(ge=0, description="Items passing every substance verifier.")
    errors: int = Field(0, ge=0, description="Items with a verifier error (never a pass).")
    pass_rate: float = Field(ge=0, le=1)
    wilson_lower: float = Field(ge=0, le=1)
    substance_pass_rate: float = Field(ge=0, le=1)
    format_pass_rate: float = Field(ge=0, le=1)
    shape_gap: float = Field(ge=-1, le=1, description="format pass rate minus substance pass rate")
    verifiers: list[VerifierStats] = Field(default_factory=list)
    slices: list[SliceStats] = Field(default_factory=list)
    symbols: list[SymbolFlag] = Field(default_factory=list)
    consistency: Consistency | None = None
    job: str | None = None
    step: int | None = None
    stopped: str | None = Field(None, description="Why the training run stopped early at this round, if it did.")
    failing_examples: list[str] = Field(default_factory=list,
                                        description="file:line of the first few items that did not pass.")
    origin: Literal["submitted", "generated"] = Field(
        "submitted", description="generated: outputs the registry sampled from the registered artifact itself "
                                 "(`evaluate --generate`, training jobs); submitted: a file a user supplied.")
    sandbox: Literal["bwrap", "unsandboxed"] | None = Field(
        None, description="How the domain's own code (python/command verifiers) ran; None when it has none.")
    # Per distinct prompt (None in records written before prompts were counted: such a round counts 0 prompts).
    prompts: int | None = Field(None, ge=0, description="Distinct registered eval prompts counted (the unit).")
    prompt_pass_rate: float | None = Field(None, ge=0, le=1, description="Mean over prompts of the fraction of "
                                           "its samples passing; wilson_lower is over prompts with this rate.")
    eval_prompts: int = Field(0, ge=0, description="Registered eval prompts of the domain version.")
    coverage: float = Field(0.0, ge=0, le=1, description="prompts / eval_prompts.")
    overlap_prompts: int = Field(0, ge=0, description="Registered eval prompts that also occur in train sources "
                                 "(never counted).")
    ngram_overlap_prompts: int = Field(0, ge=0, description="Registered eval prompts sharing a 13-word n-gram with "
                                       "a training prompt (reported, see graduation.heldout).")
    overlap_rows: int = Field(0, ge=0, description="Output rows left out because their prompt overlaps train.")
    uncounted_verifiers: list[str] = Field(default_factory=list, description="Substance verifiers that were "
                                           "untrustworthy or unvalidated when this round was scored: the policy "
                                           "never counts such a round.")

    def summary_line(self) -> str:
        return f"{self.passed}/{self.n} pass, wilson {self.wilson_lower:.3f}, shape gap {self.shape_gap:+.2f}"


class DataAuditRecord(Record):
    """A candidate SFT dataset, scanned before anyone trains on it."""

    file: str
    rows: int = Field(ge=0)
    substance_failed: int = Field(ge=0)
    substance_fail_rate: float = Field(ge=0, le=1)
    format_pass_rate: float = Field(ge=0, le=1)
    shape_gap: float = Field(ge=-1, le=1)
    errors: int = Field(0, ge=0)
    malformed_rows: int = Field(0, ge=0)
    symbols: list[SymbolFlag] = Field(default_factory=list)
    provenance: str = "unknown"
    lineage_depth: int = Field(0, ge=0)
    ungraduated_generators: list[str] = Field(default_factory=list, description="Declared ungraduated (older "
                                              "records); newer records list every generator in `generators`.")
    slices: list[SliceStats] = Field(default_factory=list)
    generators: list[str] = Field(default_factory=list, description="Models that wrote the data, along its "
                                  "lineage; whether each graduated in this domain is looked up when deciding.")
    sandbox: Literal["bwrap", "unsandboxed"] | None = Field(
        None, description="How the domain's own code (python/command verifiers) ran; None when it has none.")
    source: str | None = Field(None, description="The ground truth source scanned, when the file is one.")
    sha256: str | None = Field(None, description="Content hash of the rows scanned.")

    def summary_line(self) -> str:
        symbols = ", ".join(f"{s.symbol} {s.rate:.0%}" for s in self.symbols[:3])
        return f"{self.substance_failed}/{self.rows} fail substance" + (f"; symbols: {symbols}" if symbols else "")


class VerifierCheck(Record):
    name: str
    role: Literal["substance", "format"]
    kind: str
    version: str = "1"
    references: int = Field(ge=0)
    references_accepted: int = Field(ge=0)
    controls: int = Field(ge=0, description="Declared known-wrong outputs plus generated mutations.")
    controls_rejected: int = Field(ge=0)
    trustworthy: bool
    leaked_controls: list[str] = Field(default_factory=list, description="Controls it accepted (first few).")
    reasons: list[str] = Field(default_factory=list)
    status: Literal["trustworthy", "untrustworthy", "unvalidated", ""] = Field(
        "", description="unvalidated: too few meaningful controls to show it can fail ('' in older records).")
    meaningful_rejected: int = Field(0, ge=0, description="Declared or generated wrong answers rejected "
                                     "(the empty output does not count).")


class VerifierValidationRecord(Record):
    verifiers: list[VerifierCheck]
    sandbox: Literal["bwrap", "unsandboxed"] | None = Field(
        None, description="How the domain's own code (python/command verifiers) ran; None when it has none.")

    def summary_line(self) -> str:
        return ", ".join(f"{v.name} {'ok' if v.trustworthy else (v.status or 'untrustworthy').upper()}"
                         for v in self.verifiers)


class AuditItem(Record):
    id: str
    verdict: Literal["pass", "fail"]
    verifier_verdict: Literal["pass", "fail", "error"] | None = None


class Signed(Record):
    """An SSH signature (namespace ``graduation``) over ``payload``, by the key with ``fingerprint``."""

    payload: dict = Field(description="The canonical payload that was signed (graduation.signing).")
    signature: str = Field(description="Armored SSHSIG text, as `ssh-keygen -Y sign` writes it.")
    fingerprint: str = Field(description="SHA256 fingerprint of the signing key, as `ssh-keygen -l` shows it.")


class HumanAuditRecord(Record):
    auditor: str
    checked: int = Field(ge=0)
    held: int = Field(ge=0, description="How many of the checked items a person found correct.")
    scope: Literal["outputs", "ground_truth"] = "outputs"
    items: list[AuditItem] = Field(default_factory=list)
    agreement: float | None = Field(None, ge=0, le=1, description="Verifier-vs-person agreement on items.")
    note: str | None = None
    signed: Signed | None = Field(None, description="The auditor's signature over the items and verdicts.")

    def summary_line(self) -> str:
        return f"{self.auditor}: {self.held}/{self.checked} held" + ("" if self.signed else " (unsigned)")


class SignoffRecord(Record):
    """A person's approval. It counts only for what it binds: the domain version (``domain_digest``, the
    sha256 of its canonical spec), the model version (``model`` NAME@V and its digest) and ``actions``."""

    by: str = Field(min_length=1)
    role: str = Field(min_length=1)
    note: str | None = None
    domain_digest: str | None = Field(None, description="sha256 of the canonical spec of the domain version "
                                                        "approved.")
    model: str | None = Field(None, description="The registered model version approved (NAME@V).")
    model_digest: str | None = Field(None, description="Its artifact digest.")
    actions: list[str] = Field(default_factory=list, description="What is approved.")
    signed: Signed | None = Field(None, description="The principal's signature over the sign-off payload "
                                                    "(graduation.signing.signoff_payload).")

    def summary_line(self) -> str:
        signed = f" signed {self.signed.fingerprint[:19]}" if self.signed else " (unsigned)"
        return f"{self.by} ({self.role}){signed}"


class RetractionRecord(Record):
    """Takes an earlier record out of every decision, without deleting it."""

    evidence: str = Field(min_length=1, description="uid of the retracted record.")
    record_hash: str
    reason: str = Field(min_length=1)
    by: str = Field(min_length=1)
    signed: Signed | None = None

    def summary_line(self) -> str:
        return f"retracts {self.evidence[:12]}: {self.reason} ({self.by})"


RECORD_MODELS: dict[str, type[Record]] = {
    "eval": EvalRecord,
    "training_round": EvalRecord,
    "data_audit": DataAuditRecord,
    "verifier_validation": VerifierValidationRecord,
    "human_audit": HumanAuditRecord,
    "signoff": SignoffRecord,
    "retraction": RetractionRecord,
}
#: Every evidence kind, derived from ``RECORD_MODELS`` (adding a kind: its record model and one entry above).
EVIDENCE_KINDS: tuple[str, ...] = tuple(RECORD_MODELS)


# -- value types the store hands back (no database objects) -------------------------------------

def iso(ts: datetime) -> str:
    """A timestamp as ISO 8601 in UTC, to the second (SQLite hands datetimes back without a zone)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(timezone.utc).replace(tzinfo=None)
    return ts.replace(microsecond=0).isoformat() + "Z"


@dataclass(frozen=True)
class LoadedDomain:
    """A domain file, parsed, with the hashes of the files it references."""

    spec: DomainSpec
    source_file: str
    data_hashes: dict[str, str]
    file_stats: dict[str, list[int]] | None = None  # stat of each file when hashed (the gate's fast path)

    @property
    def content_hash(self) -> str:
        return self.spec.content_hash(self.data_hashes)

    @property
    def basis_hash(self) -> str:
        return self.spec.basis_hash(self.data_hashes)


@dataclass(frozen=True)
class Evidence:
    """An evidence record as the pure core sees it (no database objects)."""

    uid: str
    domain: str
    domain_version: int
    basis_hash: str
    kind: str
    record: Record
    created_at: datetime
    model: str | None = None
    round: int | None = None
    data_hash: str | None = None
    author: str | None = None
    record_hash: str = ""
    model_id: int | None = None
    model_key: str | None = None  # NAME@V of the registered model the record belongs to (None: none)

    def to_dict(self) -> dict[str, Any]:
        return {"uid": self.uid, "domain": self.domain, "domain_version": self.domain_version,
                "basis_hash": self.basis_hash, "kind": self.kind, "created_at": iso(self.created_at),
                "model": self.model, "round": self.round, "data_hash": self.data_hash, "author": self.author,
                "record_hash": self.record_hash, "model_id": self.model_id, "model_ref": self.model_key,
                "summary": self.record.model_dump(mode="json")}
