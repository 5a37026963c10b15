"""Entry point of a sandboxed verifier worker: ``python -m graduation.verifiers.worker FD SOFT_TIMEOUT MEMORY_MB``.

Started only by ``graduation.verifiers.sandbox.start``; it serves the pool over the inherited socket ``FD``.
"""

from __future__ import annotations

import sys
from graduation.verifiers.pool import _worker_main


def main(argv: list[str]) -> None:
    from multiprocessing.connection import Connection

    fd, soft_timeout, memory_mb = int(argv[0]), float(argv[1]), int(argv[2])
    _worker_main(Connection(fd), soft_timeout, memory_mb)


if __name__ == "__main__":
    main(sys.argv[1:])
