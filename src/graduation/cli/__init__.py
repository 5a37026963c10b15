"""The ``registry`` command line. Each module registers the commands of one area on ``app``."""

from graduation.cli.app import app
from graduation.cli import domains  # noqa: F401  (registers commands)
from graduation.cli import policy  # noqa: F401  (registers commands)
from graduation.cli import evidence  # noqa: F401  (registers commands)
from graduation.cli import report  # noqa: F401  (registers commands)
from graduation.cli import jobs  # noqa: F401  (registers commands)
from graduation.cli import models  # noqa: F401  (registers commands)


def main() -> None:
    app()


__all__ = ["app", "main"]
