"""Errors raised by graduation, and what each one means.

    GraduationError                 base class; ``str(err)`` is the message a user sees
    ├── InputError                  bad input from a user: file, data row, CLI argument (exit 2)
    │   ├── SpecError               a domain or policy file that does not load; holds every Problem
    │   ├── DataError               a malformed data row (names file and line)
    │   ├── NotFoundError           a domain, version, job or decision that does not exist
    │   ├── ConfigError             a training hyperparameter or model the trainer cannot use
    │   └── SandboxUnavailable      domain code must run sandboxed and no sandbox works here
    ├── EvidenceRefused             evidence that would count twice or not at all (exit 1, nothing written)
    ├── JobRefused                  the decision does not allow this job (exit 1, nothing written)
    ├── ApprovalRefused             something besides sign-offs is unmet for an approved action (exit 1)
    ├── SignatureError              a signature that does not verify for its principal (exit 1)
    ├── AttestationError            an envelope that does not verify with the given key (exit 1)
    ├── StoreError                  the registry database cannot be opened or written
    │   └── IntegrityError          a stored record no longer matches its chained hash (exit 2)
    ├── TrainingStopped             a run ended without learning (exit 1)
    │   └── NoLearningSignal        GRPO's mean reward did not move: no gradient to learn from
    ├── VerifierError               a verifier could not be built from its declaration
    └── EngineError                 a verification engine (Ray) could not finish a run; nothing was written

Every message names the file and line, or the field, echoes the bad value, and says what to do.
The CLI turns any ``GraduationError`` into one message and an exit code; no traceback reaches a user.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None
    hint: str | None = None

    def location(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    def render(self) -> str:
        text = f"{self.location()}: "
        if self.field:
            text += f"{self.field}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class GraduationError(Exception):
    """Base of every error graduation raises on purpose."""

    exit_code = 2


class InputError(GraduationError):
    """A user's input is wrong; nothing was written."""


@dataclass
class SpecError(InputError):
    """A file that does not load. Holds every problem found, each with its location."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class DataError(InputError):
    """A malformed data row."""


class NotFoundError(InputError):
    """Something named on the command line does not exist."""


class EvidenceRefused(GraduationError):
    """Evidence that must not be recorded (an outputs file already counted as a round); nothing was written."""

    exit_code = 1


class StoreError(GraduationError):
    """The registry database cannot be used."""


class VerifierError(GraduationError):
    """A verifier cannot be built from its declaration."""


class EngineError(GraduationError):
    """The engine could not finish the run (a cluster fault, an actor that kept dying); nothing was written."""


class TrainingStopped(GraduationError):
    """A training run stopped early because it could not learn (e.g. no learning signal); exit 1: it failed."""

    exit_code = 1


class IntegrityError(StoreError):
    """A record read to decide does not match the hash-chained entry that covers it: never an allow."""

    def __init__(self, message: str) -> None:
        super().__init__(f"registry integrity: {message}")



class ConfigError(InputError, ValueError):
    """A hyperparameter that the trainer's config does not have, a bad value, or a model that cannot load."""


class SandboxUnavailable(InputError):
    """Domain code must run sandboxed and no sandbox works here."""


class JobRefused(GraduationError):
    """The decision does not allow this job; nothing was written."""

    exit_code = 1

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons or [])


class ApprovalRefused(GraduationError):
    """Something other than sign-offs is still unmet for an approved action; nothing was written."""

    exit_code = 1

    def __init__(self, message: str, reasons: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.reasons = reasons


class SignatureError(GraduationError):
    """A signature that does not verify for the principal who claims it (exit 1: refused, nothing counted)."""

    exit_code = 1


class AttestationError(GraduationError):
    """An envelope that does not verify with the given key (exit 1)."""

    exit_code = 1


class NoLearningSignal(TrainingStopped, RuntimeError):
    """GRPO's mean reward did not move for ``no_signal_steps`` steps: every group scored alike, so no gradient."""
