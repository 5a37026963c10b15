"""Verification engines: where the verdicts of an ``evaluate`` or ``audit-data`` scan are produced.

    engine = engine_for("ray", address="auto")      # None for "local"
    evaluation.evaluate(db, root, "arith", path, model="m", engine=engine)

- ``local`` (the default, ``None``): ``graduation.service.scan`` scans in this process (large JSONL files of
  in-process kinds split across forked processes; isolated kinds in the ``VerifierPool``).
- ``ray``: ``graduation.service.engines.ray_engine.RayEngine``: Ray Data reads the file in line ranges, actors
  (each with its own ``VerifierPool``) verify and count contiguous chunks, and the driver merges the counts
  in file order, so that the record is the one the local engine builds.

Whatever the engine, the driver validates the verifiers, builds the record and writes it in one transaction
(or writes nothing when the run cannot finish). Nothing imports ray until the ray engine runs a scan.
"""

from __future__ import annotations

from typing import Any, Protocol
from graduation.errors import InputError

ENGINES = ("local", "ray")


class Engine(Protocol):
    """Scans a data file: verifies every row and adds the counts to ``tally`` and ``report``."""

    name: str

    def scan(self, ctx: Any, source: Any, report: Any, verification: Any, tally: Any, resolve: Any,
             display: str, progress: Any, verification_cls: type) -> None: ...


def engine_for(name: str, *, address: str | None = None, cpus: int | None = None) -> Engine | None:
    """The engine called ``name`` (``None`` for the local one); ``address`` only means something to ray."""

    if name not in ENGINES:
        raise InputError(f"--engine {name!r} is not an engine; use one of {', '.join(ENGINES)}")
    if name == "local":
        if address is not None:
            raise InputError("--address needs --engine ray (the local engine runs in this process)")
        return None
    from graduation.service.engines.ray_engine import RayEngine  # lazy: ray

    return RayEngine(address=address, cpus=cpus)


__all__ = ["ENGINES", "Engine", "engine_for"]
