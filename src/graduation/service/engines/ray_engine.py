"""The Ray engine: verify a JSONL or Parquet file on a Ray cluster, count exactly what the local engine counts.

    engine = RayEngine(address="auto")            # or "ray://head:10001"; None: a local Ray for this run
    evaluation.evaluate(db, root, "arith", Path("outputs.jsonl"), model="m", engine=engine)

How a run goes:

1. Ray Data reads the file through ``RowsDatasource``: a JSONL file in byte ranges cut on line ends (the local
   reader's own ``iter_jsonl_range``, so rows, line numbers and malformed-row messages are the same), a
   Parquet file by row group. Each read task yields *chunks*: contiguous runs of rows (or malformed-row
   problems) with the line each starts at. The file must be readable at the same path on every node (a
   shared file system); the driver hashes it too (``data_hash``).
2. ``_ChunkScanner`` actors (one CPU each) rebuild the domain's verifiers with ``verifiers.base.build``, as
   the local engine does, and keep one ``VerifierPool`` each for isolated kinds (same timeout, memory cap and
   sandbox as the caller's pool). Each chunk goes through ``service.scan.scan_rows``, the local scan itself, into a
   fresh ``Tally``; the actor returns that tally's state, its problems and its counters.
3. The driver checks the parts (``check_parts``: each JSONL byte range has the SHA-256 of this machine's copy,
   each Parquet row group its row count, nothing is left unread, every actor built verifiers with the
   identities built here), sorts the chunk states by first line and merges them into its tally (``Tally.merge``, as the
   local engine merges its forked parts), so that counts, slices, symbol examples and per-prompt
   consistency come out as one sequential scan would give them. The record is then built and written by
   ``service.recording`` in one transaction.

Prompts are grouped by ``hash()``: every actor of a run gets the same random ``PYTHONHASHSEED`` (through the
operator's runtime environment), and the driver refuses the run when two chunks report different hashes.

Faults: an actor that dies (its node lost, its process killed) is restarted and its chunk read and verified
again, up to ``retries`` times (Ray's ``max_restarts`` / ``max_task_retries``). A run that cannot finish
raises ``EngineError`` before anything is written. The verdict cache of the registry is neither read nor
filled (actors on other nodes have no database); ``Gathered.cache_hits`` is 0.

One module on purpose (about 500 lines): the datasource, the actor and the driver-side checks are one
protocol (what a chunk is, how it is checked and merged), and splitting them would scatter its invariants.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import json
import os
import pickle
import re
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from graduation.errors import EngineError, GraduationError, InputError
from graduation.evidence import SymbolScanner, Tally, compile_slices
from graduation.rows import ReadReport, detect_format, iter_jsonl_range, split_ranges
from graduation.service.context import DomainContext
from graduation.service.scan import scan_rows
from graduation.verifiers.base import build
from graduation.verifiers.pool import VerifierPool

CHUNK_ROWS = 8192
RANGE_BYTES = 8 << 20
MIN_RANGE_BYTES = 64 << 10
MAX_RANGES = 512
CANARY = "graduation/hash-seed-canary"
_ADDRESS = re.compile(r"^(auto|ray://[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")


# -- shipping the domain to the actors ----------------------------------------------------------------------

def _rebuild_context(fields: dict[str, Any]) -> DomainContext:
    """A ``DomainContext`` on an actor: the verifiers built again from their declarations, as locally."""

    fields = dict(fields)
    fields["verifiers"] = [build(v, fields["root"]) for v in fields["spec"].verifiers]
    return DomainContext(**fields)


def _reduce_context(ctx: DomainContext):
    fields = {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.name != "verifiers"}
    return _rebuild_context, (fields,)


# Built verifiers hold closures (a python verifier: a module loaded from the project), so a context travels
# as its declaration and is built again where it lands. Registered here: only the ray engine pickles one.
copyreg.pickle(DomainContext, _reduce_context)


@dataclasses.dataclass(frozen=True)
class _TallyRecipe:
    """What an actor needs to start a fresh tally like the driver's (slices are compiled on the actor)."""

    verifiers: list
    supported: frozenset | None
    symbol_settings: tuple
    consistency: bool
    per_prompt: bool = False

    @classmethod
    def of(cls, tally: Tally) -> "_TallyRecipe":
        scanner = tally.symbols
        settings = () if scanner is None else (scanner.min_rate, scanner.min_rows, scanner.max_examples,
                                                scanner.capacity, scanner.template_rate, scanner.label_sample)
        return cls(list(tally.verifiers), None if scanner is None else frozenset(scanner.supported), settings,
                   tally.track_consistency, tally.per_prompt)

    def fresh(self, ctx: DomainContext) -> Tally:
        symbols = None
        if self.supported is not None:
            min_rate, min_rows, max_examples, capacity, template_rate, label_sample = self.symbol_settings
            symbols = SymbolScanner(set(self.supported), min_rate, min_rows, max_examples, capacity,
                                    template_rate=template_rate, label_sample=label_sample)
        return Tally(self.verifiers, compile_slices(ctx.spec.slices), symbols, self.consistency, self.per_prompt)


# -- reading: Ray Data datasource ---------------------------------------------------------------------------

class _ChunkReport(ReadReport):
    """A read report that puts each malformed row into the chunk stream, in line order."""

    def __init__(self, display: str, sink: list) -> None:
        super().__init__(display)
        self.sink = sink

    def add(self, line: int, message: str) -> None:
        self.sink.append((line, None, message))


def _ordered(rows: Iterator[tuple[int, Any]], sink: list) -> Iterator[tuple[int, Any, str | None]]:
    """(line, row, None) for rows and (line, None, message) for malformed rows, in line order."""
    for line, row in rows:
        if sink:  # problems the reader found before this row
            yield from sink
            sink.clear()
        yield line, row, None
    yield from sink
    sink.clear()


def _blocks(items: Iterator[tuple[int, Any, str | None]], chunk_rows: int, first: int, unit: dict) -> Iterator[Any]:
    """Blocks of one row each: a chunk of up to ``chunk_rows`` consecutive items, pickled, with its first line
    and the read unit it came from (at least one block per unit, so that the driver sees every unit read)."""
    import pyarrow as pa

    unit_text = json.dumps(unit, sort_keys=True)

    def block(part: list) -> Any:
        return pa.table({"first_line": pa.array([part[0][0] if part else first], pa.int64()),
                         "unit": pa.array([unit_text], pa.string()),
                         "payload": pa.array([pickle.dumps(part, protocol=5)], pa.large_binary())})

    part: list = []
    sent = False
    for item in items:
        part.append(item)
        if len(part) >= chunk_rows:
            yield block(part)
            part, sent = [], True
    if part or not sent:
        yield block(part)


def _range_digest(path: str | Path, start: int, end: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            piece = fh.read(min(1 << 20, remaining))
            if not piece:
                break
            digest.update(piece)
            remaining -= len(piece)
    return digest.hexdigest()


def _read_jsonl(path: str, display: str, start: int, end: int, first_line: int, chunk_rows: int) -> Iterator[Any]:
    sink: list = []
    unit = {"start": start, "end": end, "sha256": _range_digest(path, start, end)}
    yield from _blocks(_ordered(iter_jsonl_range(Path(path), _ChunkReport(display, sink), start, end, first_line),
                                sink), chunk_rows, first_line, unit)


def _read_parquet(path: str, group: int, first_row: int, chunk_rows: int) -> Iterator[Any]:
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    rows = source.metadata.row_group(group).num_rows

    def items() -> Iterator[tuple[int, Any, None]]:
        number = first_row
        for batch in source.iter_batches(batch_size=2048, row_groups=[group]):
            for row in batch.to_pylist():
                yield number, row, None
                number += 1

    yield from _blocks(items(), chunk_rows, first_row, {"group": group, "rows": rows, "first": first_row})


def _datasource_class():
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class RowsDatasource(Datasource):
        """A JSONL file in line-aligned byte ranges, or a Parquet file by row group; blocks are chunks."""

        def __init__(self, path: Path, fmt: str, display: str, chunk_rows: int, min_range_bytes: int) -> None:
            super().__init__()
            self.path, self.fmt, self.display = str(path), fmt, display
            self.chunk_rows, self.min_range_bytes = chunk_rows, min_range_bytes
            self.size = path.stat().st_size

        def estimate_inmemory_data_size(self) -> int:
            return self.size * 2

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list:
            import functools

            tasks = []
            if self.fmt == "jsonl":
                # enough ranges to keep every actor busy, each at most RANGE_BYTES, none tiny
                wanted = max(parallelism, 1, -(-self.size // RANGE_BYTES))
                parts = max(1, min(MAX_RANGES, wanted, -(-self.size // self.min_range_bytes)))
                for start, end, first_line in split_ranges(self.path, parts):
                    meta = BlockMetadata(num_rows=None, size_bytes=(end - start) * 2, input_files=[self.path],
                                         exec_stats=None)
                    tasks.append(ReadTask(functools.partial(_read_jsonl, self.path, self.display, start, end,
                                                            first_line, self.chunk_rows), meta))
            else:
                import pyarrow.parquet as pq

                metadata = pq.ParquetFile(self.path).metadata
                first = 1
                for group in range(metadata.num_row_groups):
                    count = metadata.row_group(group).num_rows
                    meta = BlockMetadata(num_rows=None, size_bytes=int(metadata.row_group(group).total_byte_size),
                                         input_files=[self.path], exec_stats=None)
                    tasks.append(ReadTask(functools.partial(_read_parquet, self.path, group, first,
                                                            self.chunk_rows), meta))
                    first += count
            return tasks

    return RowsDatasource


# -- verifying: the actors ----------------------------------------------------------------------------------

class _ChunkScanner:
    """A Ray Data actor: verifies chunks with the domain's verifiers and returns their tally states."""

    def __init__(self, ctx: DomainContext, resolve: Callable, recipe: _TallyRecipe, display: str,
                 verification_cls: type, pool_settings: dict[str, Any]) -> None:
        self.ctx, self.resolve, self.recipe, self.display = ctx, resolve, recipe, display
        self.verification_cls = verification_cls
        self.pool_settings = pool_settings
        self.pool: Any = None

    def _pool(self) -> Any:
        if self.pool is None and any(v.isolated for v in self.ctx.verifiers):
            self.pool = VerifierPool(1, **self.pool_settings)
        return self.pool

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        states = []
        identities = [v.identity for v in self.ctx.verifiers]
        for first_line, unit, payload in zip(batch.column("first_line").to_pylist(), batch.column("unit").to_pylist(),
                                             batch.column("payload").to_pylist()):
            items = pickle.loads(payload)
            report = ReadReport(self.display)
            tally = self.recipe.fresh(self.ctx)
            verification = self.verification_cls(self.ctx.verifiers, self._pool(), None, False)

            def rows(items=items, report=report) -> Iterator[tuple[int, Mapping[str, Any]]]:
                for line, row, problem in items:
                    if problem is not None:
                        report.add(line, problem)
                    else:
                        yield line, row

            scan_rows(self.ctx, rows(), report, verification, tally, self.resolve, self.display, None)
            states.append(pickle.dumps({"state": tally.state(), "problems": report.problems, "count": report.count,
                                        "rows": tally.n, "verified": verification.verified,
                                        "canary": hash(CANARY), "unit": unit, "identities": identities},
                                       protocol=5))
        firsts = batch.column("first_line")
        return pa.table({"first_line": firsts, "state": pa.array(states, pa.large_binary())})

    def __del__(self) -> None:
        if self.pool is not None:
            try:
                self.pool.close()
            except Exception:
                pass


# -- the driver ---------------------------------------------------------------------------------------------

class RayEngine:
    """Verify on Ray. ``address``: ``auto``, ``ray://HOST:PORT``, or ``None`` (a local Ray for the run, shut down
    after; when this process is already connected to Ray, that connection is used and left open)."""

    name = "ray"

    def __init__(self, address: str | None = None, *, cpus: int | None = None, actors: int | None = None,
                 retries: int = 3, chunk_rows: int = CHUNK_ROWS, min_range_bytes: int = MIN_RANGE_BYTES) -> None:
        if address is not None and not _ADDRESS.match(address):
            raise InputError(f"--address {address!r}: use auto (the cluster this machine belongs to) or "
                             "ray://HOST:PORT (a Ray client server, port 10001 by default)")
        if retries < 0:
            raise InputError(f"retries must be >= 0, got {retries!r}")
        self.address = address
        self.cpus = cpus
        self.actors = actors
        self.retries = retries
        self.chunk_rows = max(1, int(chunk_rows))
        self.min_range_bytes = max(1, int(min_range_bytes))
        self.chunks = 0  # chunks merged by the last run

    # connection
    def _connect(self) -> bool:
        """Connect (or start a local Ray); returns whether this run owns the connection and must shut it down."""
        try:
            import ray
        except ImportError:
            raise InputError("--engine ray needs Ray: install graduation[ray] (the Makefile's set-up does)") \
                from None
        if ray.is_initialized():
            return False
        import logging

        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address is None:
            kwargs.update(num_cpus=self.cpus or os.cpu_count() or 1, include_dashboard=False)
        try:
            ray.init(address=self.address, **kwargs)
        except Exception as exc:
            where = self.address or "a local Ray"
            raise EngineError(f"cannot connect to {where}: {type(exc).__name__}: {exc}; check --address "
                              "(`ray status` on the head node) or drop it to start a local Ray") from None
        return True

    def scan(self, ctx: DomainContext, source: Any, report: ReadReport, verification: Any, tally: Tally,
             resolve: Callable, display: str, progress: Callable[[int], None] | None,
             verification_cls: type) -> None:
        if not isinstance(source, (str, Path)):
            raise InputError("--engine ray reads a file (JSONL or Parquet); rows held in memory are verified by "
                             "the local engine")
        path = Path(source)
        if not path.is_file():
            raise InputError(f"{display}: no such file" if not path.exists() else f"{display}: not a file")
        fmt = detect_format(path)
        if fmt not in ("jsonl", "parquet"):
            raise InputError(f"{display}: --engine ray reads JSONL or Parquet, not {fmt}; convert the file or "
                             "use the local engine")
        if fmt == "parquet":
            import pyarrow.parquet as pq

            try:
                pq.ParquetFile(path)
            except Exception as exc:  # the local reader's message, at the same place
                report.add(1, f"not a readable Parquet file ({exc})")
                return
        owned = self._connect()
        try:
            results = self._run(ctx, path, fmt, display, resolve, tally, verification, verification_cls, progress)
        finally:
            if owned:
                import ray

                ray.shutdown()
        self._merge(results, report, verification, tally, ctx, path, fmt)

    def _run(self, ctx: DomainContext, path: Path, fmt: str, display: str, resolve: Callable, tally: Tally,
             verification: Any, verification_cls: type, progress: Callable[[int], None] | None) -> list:
        import ray
        import ray.data

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data_context = ray.data.DataContext.get_current()
        data_context.enable_progress_bars = False
        data_context.print_on_execution_start = False
        import logging

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # our progress is the CLI's; errors still show
        pool_settings = _pool_settings(verification.pool)
        actors = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        seed = str(secrets.randbelow(2**32 - 1) + 1)
        source = _datasource_class()(path, fmt, display, self.chunk_rows, self.min_range_bytes)
        with warnings.catch_warnings():
            # Ray 2.60 names no parameter for max_restarts/max_task_retries, and warns about passing them as
            # remote args; they are what make a lost actor's chunk run again.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = ray.data.read_datasource(source, override_num_blocks=actors * 4)
            scanned = dataset.map_batches(
                _ChunkScanner, batch_size=None, batch_format="pyarrow", num_cpus=1,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
                fn_constructor_kwargs={"ctx": ctx, "resolve": resolve, "recipe": _TallyRecipe.of(tally),
                                       "display": display, "verification_cls": verification_cls,
                                       "pool_settings": pool_settings},
                runtime_env={"env_vars": {"PYTHONHASHSEED": seed}},
                max_restarts=self.retries, max_task_retries=self.retries)
        results: list[tuple[int, bytes]] = []
        done = 0
        try:
            for batch in scanned.iter_batches(batch_format="pyarrow", batch_size=None):
                for first_line, state in zip(batch.column("first_line").to_pylist(),
                                             batch.column("state").to_pylist()):
                    results.append((first_line, state))
                    if progress is not None:
                        done += pickle.loads(state)["rows"]
                        progress(done)
        except GraduationError:
            raise
        except Exception as exc:
            raise EngineError(f"{display}: the Ray run did not finish ({_cause(exc)}); nothing was written") \
                from None
        return results

    def _merge(self, results: list, report: ReadReport, verification: Any, tally: Tally, ctx: DomainContext,
               path: Path, fmt: str) -> None:
        """Check that the actors read this file and built these verifiers, then add their counts in file order."""
        parts = [pickle.loads(blob) for _first, blob in sorted(results, key=lambda item: item[0])]
        check_parts(parts, ctx, path, fmt)
        canaries = set()
        self.chunks = len(results)
        for part in parts:
            canaries.add(part["canary"])
            tally.merge(part["state"])
            for line, message in part["problems"]:
                report.add(line, message)
            report.count += part["count"] - len(part["problems"])
            verification.verified += part["verified"]
        if len(canaries) > 1:
            raise EngineError("the Ray actors hashed prompts differently (their PYTHONHASHSEED differs), so "
                              "per-prompt counts cannot be merged; nothing was written")


def check_parts(parts: list[dict[str, Any]], ctx: DomainContext, path: Path, fmt: str) -> None:
    """Refuse a run whose actors verified something other than what this machine holds: a verifier built
    differently on a node (other code or options: another identity), or a file that differs from this one
    (a JSONL byte range with another SHA-256, a Parquet row group with another row count), or a part of the
    file that no actor read."""
    expected = [v.identity for v in ctx.verifiers]
    for part in parts:
        if part["identities"] != expected:
            differ = [v.name for v, theirs in zip(ctx.verifiers, part["identities"]) if v.identity != theirs]
            raise EngineError(f"verifier(s) {', '.join(differ) or '?'} were built differently on a Ray node than "
                              "here (their code or options differ): give every node the same project files; "
                              "nothing was written")
    units = {part["unit"] for part in parts}
    decoded = [json.loads(u) for u in units]
    if fmt == "jsonl":
        size = path.stat().st_size
        spans = sorted((u["start"], u["end"], u["sha256"]) for u in decoded)
        position = 0
        for start, end, digest in spans:
            if start != position:
                raise EngineError(f"{path.name}: bytes {position}..{start} were read by no Ray actor; nothing was "
                                  "written")
            if _range_digest(path, start, end) != digest:
                raise EngineError(f"{path.name}: bytes {start}..{end} read on a Ray node differ from this "
                                  "machine's copy (a file changed, or not the same file on shared storage); "
                                  "nothing was written")
            position = end
        if position != size:
            raise EngineError(f"{path.name}: bytes {position}..{size} were read by no Ray actor; nothing was written")
    else:
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata
        seen = {u["group"]: u["rows"] for u in decoded}
        wanted = {g: metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)}
        if seen != wanted:
            raise EngineError(f"{path.name}: the row groups read on the Ray nodes ({len(seen)}) differ from this "
                              f"machine's copy ({len(wanted)} row groups); nothing was written")


def _pool_settings(pool: Any) -> dict[str, Any]:
    """The caller's pool settings (timeout, memory cap, sandbox, ...): every keyword of ``VerifierPool`` that the
    pool keeps under the same name, so that the actors' pools isolate as the local one does."""
    import inspect

    if pool is None:
        return {}
    names = [p.name for p in inspect.signature(VerifierPool).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return {name: getattr(pool, name) for name in names if hasattr(pool, name)}


def _cause(exc: BaseException) -> str:
    """The innermost message of a Ray error, on one line."""
    seen = exc
    while getattr(seen, "cause", None) is not None and seen.cause is not seen:
        seen = seen.cause
    text = f"{type(seen).__name__}: {seen}".strip().splitlines()
    return text[0][:300] if text else type(seen).__name__


__all__ = ["EngineError", "RayEngine"]
