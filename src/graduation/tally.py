"""Tallies: the part of a domain's evidence that can be folded once, when it is written (pure, no I/O).

A decision is computed over one domain's current-basis evidence. Most of it is *bulk*: evaluation and
training rounds, verifier validations, data audits. What a decision needs from those does not depend on
the policy, so it is folded into a small JSON *body* record by record, in the transaction that appends
the record (``graduation.store.summaries``), and a decision reads one body instead of every row:

* ``models``: each registered model's rounds, oldest first (``round_row``): sample and prompt counts, pass
  counts, Wilson bound, shape gap, slices, pass^k, coverage, the verifiers that left it uncounted, and its
  place among every model's rounds. Which rounds meet the bar depends on the policy's thresholds, so that is
  decided later (``graduation.policy.phase``), over these rounds. They are kept column by column (``array``
  of int64 and float64) and become the columns of a ``graduation.policy.rounds.Rounds`` as they are: a status
  over many domains builds no object per round, and every value comes back exactly. ``rounds``: how many
  rounds all models have;
* ``newest``: each model's newest round record, the fields the ``eval`` facts are read from (``NEWEST``);
* ``checks``: the newest validation of each (verifier, version); ``audits``: the newest data audit per file;
* ``ids``/``hashes``: the ids and record hashes (32 bytes each) of the bulk rows in id order (a decision lists
  what it read);
* ``authors``: who submitted bulk evidence (they may not approve it), ``generators``: models named by
  data audits (resolved against the registry when deciding);
* ``kinds``: how many records of every other kind (sign-offs, human audits, retractions) it saw; they are
  read as rows when deciding, and must number as many. A retraction's validity depends on the policy (its
  signature against ``allowed_signers``), so a basis with any is decided from all of its rows.

Stored (``dumps``/``loads``), a body is a JSON text holding everything but the columns, and one binary
string holding the columns, little-endian, each referenced from the text by (offset, length). Decoding a
column is then a copy, where text (base64) took 30 us per 10 kB: over 1,000 domains of 100 rounds, 40 ms
of a status.

Sign-offs and human audits are not folded: whether they count depends on the policy (signatures, roles,
unsigned risk levels), so they are read as rows and screened when deciding. They are few.
"""

from __future__ import annotations

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
#: the fields of a model's newest round that ``graduation.policy.facts.finish`` reads (its ``eval`` facts)
NEWEST = ("n", "passed", "pass_rate", "wilson_lower", "shape_gap", "consistency", "symbols", "outputs_file", "prompts",
          "coverage", "eval_prompts", "overlap_prompts", "ngram_overlap_prompts", "uncounted_verifiers")


def new_model() -> dict[str, Any]:
    return {"count": 0, "ints": array("q"), "floats": array("d"), "slices": {}, "uncounted": {}}


def append_round(packed: dict[str, Any], row: list, seq: int) -> None:
    """Append one ``round_row`` (``seq``: its place among every model's rounds) to one model's columns, in
    place."""
    n, passed, wl, gap, slices, pass_k, flip, k, number, _owner, generated, prompts, coverage, uncounted = row
    count = packed["count"]
    present = (pass_k is not None) | (flip is not None) << 1 | (k is not None) << 2
    packed["ints"].extend([n, passed, k if k is not None else 0, number, int(bool(generated)), prompts, present, seq])
    packed["floats"].extend([wl, gap, NAN if pass_k is None else pass_k, NAN if flip is None else flip, coverage])
    columns = packed["slices"]
    slices = slices or {}
    for name in slices:
        if name not in columns:
            columns[name] = array("d", NO_SLICE * count)
    for name, triples in columns.items():
        triples.extend(slices.get(name, NO_SLICE))
    if uncounted:
        packed["uncounted"][count] = list(uncounted)
    packed["count"] = count + 1


def decode_rounds(owner: str, packed: dict[str, Any]) -> Rounds:
    """One model's columns as ``Rounds`` (array slices: no object per round)."""
    out = Rounds(owner)
    ints, floats = packed["ints"], packed["floats"]
    width = len(INTS)
    for i, name in enumerate(INTS):
        setattr(out, name, ints[i::width])
    width = len(FLOATS)
    for i, name in enumerate(FLOATS):
        setattr(out, name, floats[i::width])
    for name, triples in packed["slices"].items():
        out.slices[name] = (triples[0::3], triples[1::3], triples[2::3])
    out.uncounted = {i: tuple(names) for i, names in packed["uncounted"].items()}
    return out


def decode_models(body: dict[str, Any]) -> dict[str, Rounds]:
    """owner (NAME@V) -> its ``Rounds``, for every model with rounds in ``body``."""
    return {owner: decode_rounds(owner, packed) for owner, packed in body["models"].items()}


def record_hashes(body: dict[str, Any]) -> tuple[list[int], list[str]]:
    """(row ids, record hashes) of the bulk records folded into ``body``, oldest first."""
    raw = body["hashes"]
    return body["ids"].tolist(), raw.hex(" ", 32).split(" ") if raw else []  # split in C: 100 hashes, 2 us


def new_body() -> dict[str, Any]:
    return {"format": BODY_FORMAT, "ids": array("q"), "hashes": bytearray(), "rounds": 0, "models": {}, "newest": {},
            "checks": {}, "audits": {}, "authors": [], "generators": [], "kinds": {}}


# -- stored form: a JSON text and a binary string of columns ----------------------------------------

def _raw(values) -> bytes:
    if sys.byteorder == "big" and isinstance(values, array):
        values = values.__copy__()
        values.byteswap()
    return bytes(values)


def dumps(body: dict[str, Any]) -> tuple[str, bytes]:
    """The stored form of ``body`` (what its digest covers): its JSON text, in which every column is an
    [offset, length] reference, and the columns, little-endian, one after the other."""
    parts: list[bytes] = []
    size = 0

    def ref(values) -> list[int]:
        nonlocal size
        data = _raw(values)
        parts.append(data)
        size += len(data)
        return [size - len(data), len(data)]

    doc = dict(body)
    doc["ids"] = ref(body["ids"])
    doc["hashes"] = ref(body["hashes"])
    doc["models"] = {owner: {**packed, "ints": ref(packed["ints"]), "floats": ref(packed["floats"]),
                             "slices": {name: ref(triples) for name, triples in packed["slices"].items()}}
                     for owner, packed in body["models"].items()}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))  # insertion order kept: audits are listed in it
    return text, b"".join(parts)


def _check_shape(body: Any) -> None:
    """``ValueError`` unless ``body`` has the containers ``new_body`` makes (what deciding reads before facts)."""
    if not isinstance(body, dict):
        raise ValueError("a body is a JSON object")
    for key, kind in (("models", dict), ("newest", dict), ("checks", dict), ("audits", dict), ("kinds", dict),
                      ("authors", list), ("generators", list), ("rounds", int), ("ids", list), ("hashes", list)):
        if not isinstance(body.get(key), kind):
            raise ValueError(f"{key!r} is not a JSON {'object' if kind is dict else kind.__name__}")
    if not all(isinstance(v, int) for v in body["kinds"].values()):
        raise ValueError("'kinds' counts are not integers")
    if not all(isinstance(v, str) for v in body["authors"] + body["generators"]):
        raise ValueError("'authors' and 'generators' are not lists of names")
    if not all(isinstance(v, dict) for v in body["models"].values()):
        raise ValueError("a model's rounds are not a JSON object")


def loads(text: str, columns: bytes, object_hook=None) -> dict[str, Any]:
    """The body stored as ``dumps`` wrote it. ``ValueError`` when its references or lengths do not fit the
    columns (a body edited by hand; its digest is checked before this)."""
    body = json.loads(text, object_hook=object_hook)
    _check_shape(body)
    view = memoryview(columns)

    def column(code: str, at, per: int):
        start, length = int(at[0]), int(at[1])
        if start < 0 or length < 0 or start + length > len(view):
            raise ValueError(f"column reference {at!r} outside {len(view)} bytes")
        out = array(code)
        out.frombytes(view[start:start + length])
        if sys.byteorder == "big":
            out.byteswap()
        if len(out) != per:
            raise ValueError(f"column of {len(out)} values where {per} were counted")
        return out

    start, length = body["hashes"]
    body["hashes"] = bytes(view[start:start + length])
    if len(body["hashes"]) % 32:
        raise ValueError("record hashes are not 32 bytes each")
    body["ids"] = column("q", body["ids"], len(body["hashes"]) // 32)
    for packed in body["models"].values():
        count = packed["count"]
        if not isinstance(count, int) or count < 1:
            raise ValueError(f"a model with {count!r} rounds (a stored model has at least one)")
        packed["ints"] = column("q", packed["ints"], count * len(INTS))
        packed["floats"] = column("d", packed["floats"], count * len(FLOATS))
        packed["slices"] = {name: column("d", at, count * 3) for name, at in packed["slices"].items()}
        packed["uncounted"] = {int(i): [str(name) for name in names] for i, names in packed["uncounted"].items()}
        if any(not 0 <= i < count for i in packed["uncounted"]):
            raise ValueError("an uncounted round outside the rounds counted")
    return body


def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, dict):
        return rec.get(name, default)
    return getattr(rec, name, default)


def round_row(rec: Any, owner: str, number: int) -> list:
    """One round as ``append_round`` takes it (the fields of ``graduation.policy.rounds.Round``, positional).

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
    body["ids"].append(row_id)
    body["hashes"] += bytes.fromhex(record_hash)
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
        body["newest"][owner] = {name: record[name] for name in NEWEST if name in record}
    elif kind == "verifier_validation":
        for check in record.get("verifiers") or ():
            body["checks"][check_key(check["name"], check.get("version"))] = check
    elif kind == "data_audit":
        body["audits"][record["file"]] = record
        names = set(body["generators"]) | set(record.get("generators") or ())
        body["generators"] = sorted(names)


__all__ = ["BODY_FORMAT", "BULK_KINDS", "SUBMITTED_BULK", "add", "append_round", "check_key", "decode_models",
           "decode_rounds", "dumps", "loads", "new_body", "new_model", "record_hashes", "round_row"]
