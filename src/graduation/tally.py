"""Tallies: the part of a domain's evidence that can be folded once, when it is written (pure, no I/O).

A decision is computed over one domain's current-basis evidence. Most of it is *bulk*: evaluation and
training rounds, verifier validations, data audits. What a decision needs from those does not depend on
the policy, so it is folded into a small JSON *body* record by record, in the transaction that appends
the record (``graduation.store.summaries``), and a decision reads one body instead of every row:

* ``rounds``: every round that belongs to a registered model, oldest first (``round_row``): sample and
  prompt counts, pass counts, Wilson bound, shape gap, slices, pass^k, coverage, the verifiers that left it
  uncounted. Which rounds meet the bar depends on the policy's thresholds, so that is decided later
  (``graduation.policy.phase``), over these rounds. They are kept column by column in packed arrays
  (little-endian int64 and float64, base64): a status over many domains decodes them without parsing
  hundreds of thousands of numbers from text, and every value comes back exactly;
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

#: Kinds folded into the body. Every other kind is read as a row when deciding.
BULK_KINDS = frozenset({"eval", "training_round", "verifier_validation", "data_audit"})
SUBMITTED_BULK = frozenset({"eval", "training_round", "data_audit"})
#: Bump when what ``add`` keeps changes (bodies are then rebuilt from rows by the migration that bumps it).
BODY_FORMAT = 1


INTS = 7  # per round: n, passed, k, number, generated, prompts, which optional values are present
FLOATS = 5  # per round: wilson_lower, shape_gap, pass_k, flip_rate, coverage


def new_rounds() -> dict[str, Any]:
    return {"count": 0, "ints": "", "floats": "", "owners": "", "names": [], "slices": {}, "uncounted": {}}


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


def append_round(rounds: dict[str, Any], row: list) -> None:
    """Append one ``round_row`` to the packed columns of ``rounds``, in place."""
    n, passed, wl, gap, slices, pass_k, flip, k, number, owner, generated, prompts, coverage, uncounted = row
    ints, floats, owners = _unpack("q", rounds["ints"]), _unpack("d", rounds["floats"]), _unpack("q", rounds["owners"])
    present = (pass_k is not None) | (flip is not None) << 1 | (k is not None) << 2
    ints.extend([n, passed, k if k is not None else 0, number, int(bool(generated)), prompts, present])
    floats.extend([wl, gap, pass_k if pass_k is not None else 0.0, flip if flip is not None else 0.0, coverage])
    if owner not in rounds["names"]:
        rounds["names"].append(owner)
    owners.append(rounds["names"].index(owner))
    index = str(rounds["count"])
    if slices:
        rounds["slices"][index] = slices
    if uncounted:
        rounds["uncounted"][index] = list(uncounted)
    rounds["count"] += 1
    rounds["ints"], rounds["floats"], rounds["owners"] = _pack(ints), _pack(floats), _pack(owners)


def record_hashes(body: dict[str, Any]) -> tuple[list[int], list[str]]:
    """(row ids, record hashes) of the bulk records folded into ``body``, oldest first."""
    text = body["hashes"]
    return list(_unpack("q", body["ids"])), [text[i:i + 64] for i in range(0, len(text), 64)]


def unpack_rounds(rounds: dict[str, Any], make=None, no_slices: Any = None) -> list:
    """The rounds of packed ``rounds``, oldest first, each ``make(*fields)`` (default: a ``round_row`` list;
    slices as {name: (n, passed, wilson_lower)}, or ``no_slices`` for none; uncounted verifiers as a tuple)."""
    count = rounds["count"]
    if not count:
        return []
    ints, floats, owners = _unpack("q", rounds["ints"]), _unpack("d", rounds["floats"]), _unpack("q", rounds["owners"])
    names, slices, uncounted = rounds["names"], rounds["slices"], rounds["uncounted"]
    present = ints[6::INTS]
    pass_k = [v if p & 1 else None for v, p in zip(floats[2::FLOATS], present)]
    flip = [v if p & 2 else None for v, p in zip(floats[3::FLOATS], present)]
    ks = [v if p & 4 else None for v, p in zip(ints[2::INTS], present)]
    sl = [no_slices] * count
    for key, value in slices.items():
        sl[int(key)] = {name: tuple(v) for name, v in value.items()}
    unc = [()] * count
    for key, value in uncounted.items():
        unc[int(key)] = tuple(value)
    return list(map(make or (lambda *fields: list(fields)), ints[0::INTS], ints[1::INTS], floats[0::FLOATS],
                    floats[1::FLOATS], sl, pass_k, flip, ks, ints[3::INTS], [names[i] for i in owners],
                    [bool(g) for g in ints[4::INTS]], ints[5::INTS], floats[4::FLOATS], unc))


def new_body() -> dict[str, Any]:
    return {"format": BODY_FORMAT, "ids": "", "hashes": "", "rounds": new_rounds(), "owners": {}, "newest": {},
            "checks": {}, "audits": {}, "authors": [], "generators": [], "kinds": {}}


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
        count = body["owners"].get(owner, 0) + 1
        body["owners"][owner] = count
        append_round(body["rounds"], round_row(record, owner, count))
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


__all__ = ["BODY_FORMAT", "BULK_KINDS", "SUBMITTED_BULK", "add", "append_round", "check_key", "dumps", "new_body",
           "record_hashes", "round_row", "unpack_rounds"]
