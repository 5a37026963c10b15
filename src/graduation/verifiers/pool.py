"""The isolated worker pool: untrusted outputs are verified in worker processes that may die.

    with VerifierPool(workers=2, timeout=5.0, memory_mb=1024) as pool:
        verdicts = pool.verify(verifier, [Item(output, reference, row), ...])   # in order

Each worker is forked from a forkserver that has already imported sympy and math-verify, caps its own address
space (``RLIMIT_AS``: current size plus ``memory_mb``), and checks items one at a time under a soft timer
(``SIGALRM`` raised into the check). The parent sends items in batches for throughput, receives one result per
item, and gives every item its own deadline: an item that is not answered within ``timeout`` seconds of the
previous answer gets its worker killed. The item in progress becomes an ``error`` verdict (timeout, crash or
memory), the rest of that batch goes back on the queue, a fresh worker takes the dead one's place, and the
run goes on. Kinds registered ``isolated=False`` (exact, regex, numeric, json_schema) are checked in the
calling process unless ``isolate_all`` is set: they are linear-time and size-capped.

This is the API a GRPO reward function uses: build the verifiers once (``build``), keep one pool for the
whole training run, and call ``pool.verify(verifier, items)`` per batch of completions.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from graduation.verifiers import runtime
from graduation.verifiers.base import Verdict, Verifier, build, safe_call
from graduation.verifiers.sandbox import DOMAIN_CODE_KINDS, require, start

PRELOAD = ["graduation.verifiers.base", "sympy", "math_verify", "latex2sympy2_extended"]


class Item(tuple):
    """One thing to check: the untrusted output, the reference, and the reference row (or ``None``)."""

    __slots__ = ()

    def __new__(cls, output: Any, reference: Any, row: Mapping[str, Any] | None = None) -> "Item":
        return tuple.__new__(cls, (output, reference, row))

    output = property(lambda self: self[0])
    reference = property(lambda self: self[1])
    row = property(lambda self: self[2])


# -- the worker side -------------------------------------------------------------------------------

class _SoftTimeout(BaseException):
    """Raised into a check by the worker's timer (a BaseException, so that checks cannot swallow it)."""


def _worker_main(conn: Connection, soft_timeout: float, memory_mb: int) -> None:
    import signal

    runtime.IN_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _cap_memory(memory_mb)

    def on_alarm(signum, frame):
        raise _SoftTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    built: dict[str, Any] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        specs, tasks = message
        for key, payload in specs.items():
            if key not in built:
                try:
                    spec = {k: v for k, v in payload.items() if k != "root"}
                    built[key] = build(spec, payload.get("root"))
                except Exception as exc:  # reported per item: the verifier cannot be built here
                    built[key] = f"{type(exc).__name__}: {exc}"
        for index, key, output, reference, row in tasks:
            verifier = built.get(key)
            if isinstance(verifier, str) or verifier is None:
                verdict = Verdict.error(f"verifier could not be built in the worker: {verifier}")
            else:
                try:
                    signal.setitimer(signal.ITIMER_REAL, soft_timeout)
                    try:
                        verdict = safe_call(verifier.check, output, reference, row)
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                except _SoftTimeout:
                    verdict = Verdict.error(f"timed out after {soft_timeout:g}s")
            try:
                conn.send((index, tuple(verdict)))
            except (EOFError, OSError, BrokenPipeError):
                return
            except Exception as exc:  # an unpicklable answer from a plugin: report, keep going
                conn.send((index, tuple(Verdict.error(f"unsendable verdict: {type(exc).__name__}"))))


def _cap_memory(memory_mb: int) -> None:
    if memory_mb <= 0:
        return
    import resource

    try:
        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        current = 0
    limit = current + memory_mb * (1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass


# -- the parent side -------------------------------------------------------------------------------

@dataclass
class _Worker:
    process: Any
    conn: Connection
    inflight: deque = field(default_factory=deque)
    deadline: float = math.inf
    known: set = field(default_factory=set)
    pending: dict = field(default_factory=dict)


class VerifierPool:
    """Worker processes with a per-item timeout and a memory cap. Use as a context manager, or ``close()``."""

    def __init__(self, workers: int | None = None, *, timeout: float = 10.0, memory_mb: int = 2048,
                 batch_size: int = 32, isolate_all: bool = False, sandbox: str = "bwrap") -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.size = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.soft_timeout = max(0.05, self.timeout * 0.8)
        self.memory_mb = int(memory_mb)
        self.batch_size = max(1, int(batch_size))
        self.isolate_all = isolate_all
        self.sandbox = sandbox  # how python and command verifiers run: "bwrap" or "unsandboxed"
        self._domain_pools: dict[str, _SandboxPool] = {}  # per project root: each sees only its own project
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._ctx = None
        self.restarts = 0

    # lifecycle
    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _context(self):
        if self._ctx is None:
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            self._ctx = multiprocessing.get_context(method)
            if method == "forkserver":
                self._ctx.set_forkserver_preload(PRELOAD)
        return self._ctx

    def _spawn(self) -> _Worker:
        ctx = self._context()
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_worker_main, args=(child, self.soft_timeout, self.memory_mb),
                              daemon=True, name="graduation-verifier")
        # A worker needs nothing from the caller's script. Hide ``__main__`` while starting it, so that the
        # child does not re-run that script (which would need an ``if __name__ == "__main__"`` guard that a
        # training script calling us as its reward function has no reason to carry).
        import sys
        import types

        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            if main is not None:
                sys.modules["__main__"] = main
        child.close()
        return _Worker(process, parent)

    def _ensure_workers(self, wanted: int) -> None:
        while len(self._workers) < min(self.size, wanted):
            self._workers.append(self._spawn())

    def _kill(self, worker: _Worker) -> None:
        try:
            worker.process.kill()
        except Exception:
            pass
        worker.process.join(timeout=5)
        worker.conn.close()

    def close(self) -> None:
        for sandboxed in self._domain_pools.values():
            sandboxed.close()
        self._domain_pools = {}
        with self._lock:
            for worker in self._workers:
                try:
                    worker.conn.send(None)
                except (OSError, EOFError, BrokenPipeError):
                    pass
            for worker in self._workers:
                worker.process.join(timeout=2)
                if worker.process.is_alive():
                    self._kill(worker)
                else:
                    worker.conn.close()
            self._workers = []

    # verification
    def verify(self, verifier: Verifier, items: Iterable[Item | Sequence[Any]]) -> list[Verdict]:
        """Verdicts for ``items`` (output, reference, row), in order."""
        return self.verify_many([(verifier, item) for item in items])

    def verify_many(self, jobs: Sequence[tuple[Verifier, Item | Sequence[Any]]]) -> list[Verdict]:
        """Verdicts for (verifier, item) pairs of any mix of verifiers, in order."""
        results: list[Verdict | None] = [None] * len(jobs)
        isolated: list[tuple[int, Verifier, Sequence[Any]]] = []
        domain_code: list[tuple[int, Verifier, Sequence[Any]]] = []
        for index, (verifier, item) in enumerate(jobs):
            output, reference, row = _unpack(item)
            if verifier.kind in DOMAIN_CODE_KINDS:
                domain_code.append((index, verifier, (output, reference, row)))
            elif verifier.isolated or self.isolate_all:
                isolated.append((index, verifier, (output, reference, row)))
            else:
                results[index] = safe_call(verifier.check, output, reference, row)
        if isolated:
            with self._lock:
                for index, verdict in self._run(isolated).items():
                    results[index] = verdict
        for root in {task[1].root for task in domain_code}:
            tasks = [task for task in domain_code if task[1].root == root]
            for index, verdict in self.domain_pool(root)._run(tasks).items():
                results[index] = verdict
        return results  # type: ignore[return-value]

    def domain_pool(self, root: str) -> "_SandboxPool":
        """The workers that run domain code (python, command) of the project at ``root``: sandboxed, started
        on first use."""
        if root not in self._domain_pools:
            sandboxed = _SandboxPool(self.size, timeout=self.timeout, memory_mb=self.memory_mb,
                                     batch_size=self.batch_size, sandbox=require(self.sandbox))
            sandboxed.root = root
            self._domain_pools[root] = sandboxed
        return self._domain_pools[root]

    def _run(self, tasks: list[tuple[int, Verifier, Sequence[Any]]]) -> dict[int, Verdict]:
        payloads = {}
        queue: deque = deque()
        for index, verifier, (output, reference, row) in tasks:
            key = verifier.identity + "|" + verifier.root
            payloads.setdefault(key, verifier.payload())
            queue.append((index, key, output, reference, None if row is None else dict(row)))
        self._ensure_workers(len(queue))  # even a small batch (a GRPO step's completions) uses every core
        per_batch = max(1, min(self.batch_size, math.ceil(len(queue) / (len(self._workers) * 4))))
        results: dict[int, Verdict] = {}
        while len(results) < len(tasks):
            now = time.monotonic()
            for worker in self._workers:
                if not worker.inflight and queue:
                    batch = [queue.popleft() for _ in range(min(per_batch, len(queue)))]
                    specs = {key: payloads[key] for _, key, *_ in batch if key not in worker.known}
                    try:
                        worker.conn.send((specs, batch))
                    except (OSError, EOFError, BrokenPipeError):
                        queue.extendleft(reversed(batch))
                        self._replace(worker, None, results, queue)
                        continue
                    worker.known.update(specs)
                    worker.inflight.extend(task[0] for task in batch)
                    worker.pending = {task[0]: task for task in batch}
                    worker.deadline = now + self.timeout
            busy = [w for w in self._workers if w.inflight]
            if not busy:
                continue
            wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = set(wait([w.conn for w in busy], timeout=wait_for))
            for worker in list(busy):
                if worker.conn in ready:
                    self._drain(worker, results, queue)
            now = time.monotonic()
            for worker in list(self._workers):
                if worker.inflight and now >= worker.deadline:
                    self._replace(worker, f"timed out after {self.timeout:g}s (worker killed)", results, queue)
        return results

    def _drain(self, worker: _Worker, results: dict[int, Verdict], queue: deque) -> None:
        while True:
            try:
                if not worker.conn.poll():
                    return
                index, verdict = worker.conn.recv()
            except (EOFError, OSError):
                code = worker.process.exitcode
                worker.process.join(timeout=1)
                code = worker.process.exitcode if code is None else code
                reason = "memory limit exceeded (worker died)" if code in (-9, 137) else \
                    f"the verifier crashed its worker (exit code {code})"
                self._replace(worker, reason, results, queue)
                return
            results[index] = Verdict(*verdict)
            if worker.inflight and worker.inflight[0] == index:
                worker.inflight.popleft()
            else:
                worker.inflight.remove(index)
            worker.pending.pop(index, None)
            worker.deadline = time.monotonic() + self.timeout

    def _replace(self, worker: _Worker, reason: str | None, results: dict[int, Verdict], queue: deque) -> None:
        """Kill a worker; its current item gets ``reason`` as an error, the rest of its batch is requeued."""
        self._kill(worker)
        pending = worker.pending
        if worker.inflight and reason is not None:
            current = worker.inflight.popleft()
            results[current] = Verdict.error(reason)
            pending.pop(current, None)
        queue.extendleft(reversed([pending[i] for i in worker.inflight if i in pending]))
        position = self._workers.index(worker)
        self._workers[position] = self._spawn()
        self.restarts += 1


class _SandboxPool(VerifierPool):
    """Workers started by ``graduation.verifiers.sandbox``: fresh interpreters, sandboxed, one per slot."""

    root: str = "."

    def _spawn(self) -> _Worker:
        process, conn = start(self.sandbox, self.root, self.soft_timeout, self.memory_mb)
        return _Worker(process, conn)


def verify_items(verifier: Verifier, items: Iterable[Item | Sequence[Any]],
                 pool: VerifierPool | None = None) -> list[Verdict]:
    """Check items with a pool when given (or needed), else in this process for cheap kinds."""
    items = list(items)
    if pool is not None:
        return pool.verify(verifier, items)
    if verifier.isolated:
        with VerifierPool() as own:
            return own.verify(verifier, items)
    return [safe_call(verifier.check, *_unpack(item)) for item in items]


def _unpack(item: Item | Sequence[Any]) -> tuple[Any, Any, Mapping[str, Any] | None]:
    values = tuple(item)
    if len(values) == 2:
        return values[0], values[1], None
    if len(values) != 3:
        raise ValueError(f"an item is (output, reference) or (output, reference, row), got {len(values)} values")
    return values  # type: ignore[return-value]
