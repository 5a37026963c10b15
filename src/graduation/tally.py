"""Tallies: the part of a domain's evidence that can be folded once, when it is written (pure, no I/O).

A decision is computed over one domain's current-basis evidence. Most of it is *bulk*: evaluation and
training rounds, verifier validations, data audits. What a decision needs from those does not depend on
the policy, so it is folded into a small JSON *body* record by record, in the transaction that appends
the record (``graduation.store.summaries``), and a decision reads one body instead of every row:

* ``models``: each registered model's rounds, oldest first (``round_row``): sample and prompt counts, pass
  counts, Wilson bound, shape gap, slices, pass^k, coverage, the verifiers that left it uncounted, and its
  place among every model's rounds. Which rounds meet the bar depends on the policy's thresholds, so that is
  decided later (``graduation.policy.phase``), over these rounds. They are kept column by column in packed
  arrays (little-endian int64 and float64, base64) and decoded straight into the columns of a
  ``graduation.policy.rounds.Rounds``: a status over many domains builds no object per round, and every
  value comes back exactly. ``rounds``: how many rounds all models have;
* ``newest``: each model's newest round record (the ``eval`` facts are read from it);
* ``checks``: the newest validation of each (verifier, version); ``audits``: the newest data audit per file;
* ``ids``/``hashes``: the ids (packed like the rounds) and record hashes (64 hex digits each, one string) of
  the bulk rows in id order (a decision lists what it read);
* ``authors``: who submitted bulk evidence (they may not approve it), ``generators``: models named by
  data audits (resolved against the registry when deciding);
* ``kinds``: how many records of every other kind (sign-offs, human audits, retractions) it saw; they are
  read as rows when deciding, and must number as many. A retraction's validity depends on the policy (its
  signature against ``allowed_signers``), so a basis with any is decided from all of its rows.

Sign-offs and human audits are not folded: whether they count depends on the policy (signatures, roles,
unsigned risk levels), so they are read as rows and screened when deciding. They are few.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from typing import Any

from graduation.policy.rounds import NAN, Rounds

#: Kinds folded into the body. Every other kind is read as a row when deciding.
BULK_KINDS = frozenset({"eval", "training_round", "verifier_validation", "data_audit"})
SUBMITTED_BULK = frozenset({"eval", "training_round", "data_audit"})
#: Bump when what ``add`` keeps changes (bodies are then rebuilt from rows by the migration that bumps it).
BODY_FORMAT = 2

#: per round, the int columns (n, passed, k, number, generated, prompts, present, seq) and the float columns
#: (wilson_lower, shape_gap, pass_k, flip_rate, coverage) of ``Rounds``, in the packed order
INTS = ("n", "passed", "k", "number", "generated", "prompts", "present", "seq")
FLOATS = ("wilson_lower", "shape_gap", "pass_k", "flip_rate", "coverage")
NO_SLICE = (NAN, NAN, NAN)  # a round without evidence for a slice


def _unpack(code: str, text: str):
    out = array(code, base64.b64decode(text))
    if sys.byteorder == "big":
        out.byteswap()
    return out


def _pack(values) -> str:
    if sys.byteorder == "big":
        values = values.__copy__()
        values.byteswap()
    return base64.b64encode(values.tobytes()).decode("ascii")


def new_model() -> dict[str, Any]:
    return {"count": 0, "ints": "", "floats": "", "slices": {}, "uncounted": {}}


def append_round(packed: dict[str, Any], row: list, seq: int) -> None:
    """Append one ``round_row`` (``seq``: its place among every model's rounds) to one model's packed columns,
    in place."""
    n, passed, wl, gap, slices, pass_k, flip, k, number, _owner, generated, prompts, coverage, uncounted = row
    count = packed["count"]
    ints, floats = _unpack("q", packed["ints"]), _unpack("d", packed["floats"])
    present = (pass_k is not None) | (flip is not None) << 1 | (k is not None) << 2
    ints.extend([n, passed, k if k is not None else 0, number, int(bool(generated)), prompts, present, seq])
    floats.extend([wl, gap, NAN if pass_k is None else pass_k, NAN if flip is None else flip, coverage])
    packed["ints"], packed["floats"] = _pack(ints), _pack(floats)
    columns = packed["slices"]
    slices = slices or {}
    for name in [*columns, *(name for name in slices if name not in columns)]:  # a fixed order: the text is hashed
        triples = _unpack("d", columns[name]) if name in columns else array("d", NO_SLICE * count)
        triples.extend(slices.get(name, NO_SLICE))
        columns[name] = _pack(triples)
    if uncounted:
        packed["uncounted"][str(count)] = list(uncounted)
    packed["count"] = count + 1


def decode_rounds(owner: str, packed: dict[str, Any]) -> Rounds:
    """One model's packed columns as ``Rounds`` (array slices: no object per round)."""
    out = Rounds(owner)
    if not packed["count"]:
        return out
    ints, floats = _unpack("q", packed["ints"]), _unpack("d", packed["floats"])
    width = len(INTS)
    for i, name in enumerate(INTS):
        setattr(out, name, ints[i::width])
    width = len(FLOATS)
    for i, name in enumerate(FLOATS):
        setattr(out, name, floats[i::width])
    for name, text in packed["slices"].items():
        triples = _unpack("d", text)
        out.slices[name] = (triples[0::3], triples[1::3], triples[2::3])
    out.uncounted = {int(i): tuple(names) for i, names in packed["uncounted"].items()}
    return out


def decode_models(body: dict[str, Any]) -> dict[str, Rounds]:
    """owner (NAME@V) -> its ``Rounds``, for every model with rounds in ``body``."""
    return {owner: decode_rounds(owner, packed) for owner, packed in body["models"].items()}


def record_hashes(body: dict[str, Any]) -> tuple[list[int], list[str]]:
    """(row ids, record hashes) of the bulk records folded into ``body``, oldest first."""
    text = body["hashes"]
    return list(_unpack("q", body["ids"])), [text[i:i + 64] for i in range(0, len(text), 64)]


def new_body() -> dict[str, Any]:
    return {"format": BODY_FORMAT, "ids": "", "hashes": "", "rounds": 0, "models": {}, "newest": {}, "checks": {},
            "audits": {}, "authors": [], "generators": [], "kinds": {}}


def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, dict):
        return rec.get(name, default)
    return getattr(rec, name, default)


def round_row(rec: Any, owner: str, number: int) -> list:
    """One round as ``graduation.policy.facts.Round`` takes it (positional), in JSON types.

    ``number``: the round's number when the record has none (its position among the owner's rounds).
    """
    c = _get(rec, "consistency")
    sl = _get(rec, "slices")
    slices = {_get(s, "name"): [_get(s, "n"), _get(s, "passed"), _get(s, "wilson_lower")] for s in sl} if sl else None
    rnd = _get(rec, "round")
    return [_get(rec, "n"), _get(rec, "passed"), _get(rec, "wilson_lower"), _get(rec, "shape_gap"), slices,
            _get(c, "pass_all_k") if c is not None else None, _get(c, "flip_rate") if c is not None else None,
            _get(c, "k") if c is not None else None, rnd if rnd is not None else number, owner,
            _get(rec, "origin", "submitted") == "generated", _get(rec, "prompts", None) or 0,
            float(_get(rec, "coverage", 0.0)), list(_get(rec, "uncounted_verifiers", ()) or ())]


def check_key(name: str, version: Any) -> str:
    return f"{name}\n{json.dumps(version)}"


def add(body: dict[str, Any], *, row_id: int, kind: str, record: dict[str, Any], owner: str | None,
        record_hash: str, author: str | None) -> None:
    """Fold one record (``record``: its stored summary, a plain dict) into ``body``, in place."""
    if kind not in BULK_KINDS:
        body["kinds"][kind] = body["kinds"].get(kind, 0) + 1  # counted, not folded: read as rows when deciding
        return
    ids = _unpack("q", body["ids"])
    ids.append(row_id)
    body["ids"] = _pack(ids)
    body["hashes"] += record_hash
    if author and kind in SUBMITTED_BULK and author not in body["authors"]:
        body["authors"].append(author)
        body["authors"].sort()
    if kind in ("eval", "training_round"):
        if owner is None:
            return  # a round of no registered model moves no model's phase
        packed = body["models"].get(owner)
        if packed is None:
            packed = body["models"][owner] = new_model()
        append_round(packed, round_row(record, owner, packed["count"] + 1), body["rounds"])
        body["rounds"] += 1
        body["newest"][owner] = record
    elif kind == "verifier_validation":
        for check in record.get("verifiers") or ():
            body["checks"][check_key(check["name"], check.get("version"))] = check
    elif kind == "data_audit":
        body["audits"][record["file"]] = record
        names = set(body["generators"]) | set(record.get("generators") or ())
        body["generators"] = sorted(names)


def dumps(body: dict[str, Any]) -> str:
    """The stored text of a body (what its digest covers)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))  # insertion order kept: audits are listed in it


__all__ = ["BODY_FORMAT", "BULK_KINDS", "SUBMITTED_BULK", "add", "append_round", "check_key", "decode_models",
           "decode_rounds", "dumps", "new_body", "new_model", "record_hashes", "round_row"]
