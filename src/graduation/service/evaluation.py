"""Evaluating a model: its outputs on the domain's registered held-out prompts, verified and recorded as a round.

    result = evaluate(db, root, "arith", Path("outputs.jsonl"), model="m1")   # -> Gathered (an EvalRecord)
    result = evaluate_generated(db, root, "arith", model="m1@2")             # the registry samples the artifact

References come only from the registered eval ground truth; held-out prompts that also occur in training
data never count; rounds are numbered by the registry per model version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from graduation.errors import InputError
from graduation.evidence import SymbolScanner, Tally, compile_slices
from graduation.records import EvalRecord
from graduation.rows import ReadReport
from graduation.service.context import (Gathered, Progress, display_name, ground_truth_rows, hash_rows,
                                        load_context, reference_index, row_key, row_keys, row_sink)
from graduation.service.heldout import heldout_overlap
from graduation.service.recording import record_gathered, refuse_repeat
from graduation.service.scan import supported_vocabulary, validate_and_scan
from graduation.service.validation import uncounted_verifiers
from graduation.service.verification import Verification
from graduation.store.models import ModelInfo, resolve_model
from graduation.verifiers.pool import VerifierPool


def evaluate(db: Any, root: Path, domain: str, outputs: Path | Iterable[Mapping[str, Any]], *, model: Any,
             kind: str = "eval", job: str | None = None, step: int | None = None,
             pool: VerifierPool | None = None, cache: bool = True, store: bool = True,
             progress: Progress | None = None, name: str | None = None, engine: Any = None,
             stopped: str | None = None, rows_out: Path | None = None, origin: str = "submitted") -> Gathered:
    """Verify a model's outputs on held-out prompts and build (and record) an ``EvalRecord``.

    ``model``: a registered model (``NAME``, ``NAME@V``, ``sha256:HEX`` or a ``ModelInfo``); an unknown one
    is an ``InputError`` naming the register command. The round number is assigned by the registry: the
    next round of that model version in the domain's current basis. ``origin``: ``generated`` when the
    registry sampled the outputs from the registered artifact itself, else ``submitted``.

    ``outputs``: a data file (JSONL, JSON, CSV, Parquet) or rows already in memory (a training job's samples).
    Each row holds the prompt (or id) and the output; the reference comes only from the domain's registered
    eval ground truth (splits eval and all): a row whose prompt/id is not registered there is refused with
    its file:line (nothing written), whatever answer it carries. Samples of one prompt are one unit: the
    record's ``prompts``, ``coverage`` and ``wilson_lower`` are over distinct prompts (``prompt_bound``).
    Eval prompts that also occur in training sources are left out (``overlap_rows``). The same outputs
    content already recorded for the same registered model version is refused (``EvidenceRefused``, exit 1).
    ``kind="training_round"`` with ``job``/``step`` is what training jobs write. ``engine``: where the rows are
    verified (``graduation.service.engines``; ``None``: here); the record is the same. ``rows_out``: also write one
    JSON line per item (``graduation.service.rowlog``).
    """
    if kind not in ("eval", "training_round"):
        raise InputError(f"evaluate writes eval or training_round evidence, not {kind!r}")
    if origin not in ("submitted", "generated"):
        raise InputError(f"origin {origin!r}: submitted or generated")
    info = model_info(db, model)
    ctx = load_context(db, root, domain)
    display = display_name(outputs, root, name)
    task = ctx.spec.task
    index = reference_index(ctx, ("eval", "all"))
    if not index:
        raise InputError(f"domain {domain!r} has no registered eval prompts (ground truth with split: eval): "
                         "outputs can only be verified against registered held-out references")
    heldout = heldout_overlap(ctx)
    # a missing file is reported by the reader below, with its name
    data_hash = hash_rows(outputs) if not isinstance(outputs, (str, Path)) or Path(outputs).is_file() else None
    if store and data_hash is not None:
        with db.read() as session:
            refuse_repeat(session, ctx, info.id, data_hash, display)
    report = ReadReport(display)
    canonical: dict[int, str] = {}

    def resolve(line: int, row: Mapping[str, Any], report: ReadReport):
        if task.output_field not in row:
            report.add(line, f"no {task.output_field!r} field (the model's output); fields: {sorted(row)[:8]}")
            return None
        found = index.lookup(row_keys(row, ctx.spec))
        if found is None:
            report.add(line, f"{task.id_field or task.prompt_field!r} is not a registered eval prompt of "
                             f"{domain!r}: outputs are verified only against the domain's registered held-out "
                             "ground truth (split: eval), never against an answer in the outputs file")
            return None
        key = canonical.get(id(found[1]))
        if key is None:
            key = canonical[id(found[1])] = row_key(found[1], ctx.spec) or ""
        if key in heldout.keys:
            return ()  # left out on purpose: counted in the tally's ``skipped`` (here, in a forked part, on Ray)
        return row[task.output_field], found[0], found[1], key

    supported = supported_vocabulary(ctx)
    tally = Tally(ctx.infos, compile_slices(ctx.spec.slices), SymbolScanner(supported), per_prompt=True)
    sink = row_sink(ctx, display, supported, rows_out, None)
    try:
        validation, ran, verification = validate_and_scan(db, ctx, pool, cache, Verification, outputs, report,
                                                           tally, resolve, display, progress, engine, sink)
        report.raise_if_any()
        registered = len({id(v[1]) for v in index.values()})
        prompts = len(tally.prompt_rates())
        record: EvalRecord = tally.eval_record(
            model=info.ref, round=None, outputs_file=display, job=job, step=step, eval_prompts=registered,
            coverage=min(1.0, prompts / registered) if registered else 0.0, overlap_prompts=len(heldout.exact),
            ngram_overlap_prompts=len(heldout.ngram), overlap_rows=tally.skipped,
            uncounted_verifiers=uncounted_verifiers(ctx, validation))
        record = record.model_copy(update={"origin": origin, **({"stopped": stopped} if stopped else {})})
        result = Gathered(kind, record, validation, ran, data_hash, cache_hits=verification.cache_hits,
                          verified=verification.verified)
        record_gathered(db, ctx, result, verification, store, model_id=info.id)
        if sink is not None:
            result.rows_written = sink.finish({f.symbol for f in record.symbols})
    except BaseException:
        if sink is not None:
            sink.discard()
        raise
    return result


def evaluate_generated(db: Any, root: Path, domain: str, *, model: Any, samples: int = 0, temperature: float = 0.0,
                       max_new_tokens: int = 64, engine: str = "transformers", limit: int | None = None,
                       pool: VerifierPool | None = None, progress: Progress | None = None) -> Gathered:
    """Sample the registered artifact on the domain's held-out prompts, verify, record a ``generated`` round.

    The artifact's directory is hashed again first: it must still match the registered digest.
    """
    info = model_info(db, model)
    _has_files(info)
    base = adapter_base(db, info)
    ctx = load_context(db, root, domain)
    task = ctx.spec.task
    held_out = [row for _s, _f, _l, row in ground_truth_rows(ctx, splits=("eval",))] or \
        [row for _s, _f, _l, row in ground_truth_rows(ctx)]
    held_out = [row for row in held_out if task.prompt_field in row]
    if limit is not None:
        held_out = held_out[:limit]
    if not held_out:
        raise InputError(f"{domain}: no held-out prompts in its ground truth (split eval, else all)")
    from graduation.training.sample import check_artifact, sample  # torch/transformers only from here on

    check_artifact(Path(info.path), str(info.digest))
    if base is not None:
        check_artifact(Path(base.path), str(base.digest))  # the adapter's answers are its base's too
    rows = sample(Path(info.path), held_out, prompt_field=task.prompt_field, answer_field=task.answer_field,
                  id_field=task.id_field, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens,
                  engine=engine, base_dir=Path(base.path) if base is not None else None)
    rows = [{**({task.output_field: r.pop("output")}), **r} for r in rows]
    return evaluate(db, root, domain, rows, model=info, pool=pool, progress=progress, origin="generated",
                    name=f"{info.ref} sampled by the registry ({engine})")


def _has_files(info: ModelInfo, role: str = "") -> None:
    if not info.path or info.digest_kind != "manifest":
        raise InputError(f"{role}{info.ref} was registered by digest only ({info.digest_kind}); --generate samples "
                         "the files themselves: register the model directory with `registry models register "
                         f"{info.name} --path DIR`")


def adapter_base(db: Any, info: ModelInfo) -> ModelInfo | None:
    """The registered base a LoRA adapter is applied to when it is sampled; None for a whole model.

    The base is the one the adapter's (chained) lineage pins by digest: a job's adapter, or one registered
    with ``models register --adapter-of``. A directory holding an adapter registered without its base is
    refused: sampled alone it is not a model, and on a base chosen now its answers would be another artifact's.
    """
    if info.lineage.get("kind") != "adapter":
        if info.path and (Path(info.path) / "adapter_config.json").is_file():
            raise InputError(f"{info.ref} is a LoRA adapter ({info.path} holds adapter_config.json) registered "
                             "without its base (`models register` now asks for --adapter-of BASE): alone it is not "
                             "a model to sample; evaluate its outputs with --outputs, or register and evaluate its "
                             "merged model")
        return None
    pin = info.lineage.get("base")
    digest = pin.get("digest") if isinstance(pin, dict) else None
    if not isinstance(digest, str) or not digest:
        named = pin.get("name") if isinstance(pin, dict) else None
        raise InputError(f"{info.ref} is a LoRA adapter of {named or 'a base'} that is no registered model, so "
                         "there are no base files to apply it to: sample it where its base is, or register and "
                         "evaluate its merged model (`jobs generate ... --merge`)")
    with db.read() as session:
        base = resolve_model(session, digest)
    _has_files(base, "the base of the adapter, ")
    if base.lineage.get("kind") == "adapter" or (Path(base.path) / "adapter_config.json").is_file():
        # loaded as a model, an adapter's directory loads the base its adapter_config.json names (any path, no
        # digest checked) and applies itself: the answers would be of weights nothing registered covers
        raise InputError(f"{info.ref} is a LoRA adapter of {base.ref}, itself a LoRA adapter "
                         f"({base.path} holds adapter_config.json): an adapter is sampled only on a whole registered "
                         "model; register and evaluate the merged model of the base (`jobs generate ... --merge`)")
    return base


def model_info(db: Any, model: Any):
    """A registered model from a reference (or a ``ModelInfo`` as it is)."""

    if isinstance(model, ModelInfo):
        return model
    if not isinstance(model, str) or not model.strip():
        raise InputError("name the model that wrote the outputs: --model NAME[@V]|sha256:HEX (a registered model)")
    with db.read() as session:
        return resolve_model(session, model)
