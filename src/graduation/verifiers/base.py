"""The verifier contract: ``Verdict``, the ``@verifier`` registry of kinds, and ``build``.

A verifier *kind* is a small factory registered by name::

    @verifier("exact", isolated=False)
    def exact(*, case_sensitive: bool = False, ...) -> Check:
        def check(output, reference, row):
            ...
            return Verdict.of(ok, answer=..., explanation=...)
        return check

``build(spec)`` binds a domain's ``VerifierSpec.options`` to the factory's keyword arguments (every bad
option reported at once, with a did-you-mean) and returns a ``Verifier``: the check plus its name, role,
version and identity hash (what the verdict cache keys on). Kinds whose checks are provably bounded
(linear-time, size-capped) register ``isolated=False`` and run in-process; every other kind runs in the
isolated worker pool. Other packages add kinds through the ``graduation.verifiers`` entry point group
(each entry point names a module that registers its kinds, or a factory registered under its name).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from graduation.errors import VerifierError
from graduation.spec import VerifierSpec, sha256_json

VerdictValue = Literal["pass", "fail", "error"]
MAX_OUTPUT_CHARS = 1_000_000  # outputs longer than this are failed unread by in-process kinds


class Verdict(NamedTuple):
    """The result of checking one output against one reference. ``error`` is never a pass."""

    verdict: VerdictValue
    score: float = 0.0
    answer: str | None = None
    explanation: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @classmethod
    def of(cls, ok: bool, *, answer: str | None = None, explanation: str | None = None,
           score: float | None = None) -> "Verdict":
        return cls("pass" if ok else "fail", (1.0 if ok else 0.0) if score is None else float(score),
                   _clip(answer), explanation)

    @classmethod
    def error(cls, explanation: str, *, answer: str | None = None) -> "Verdict":
        return cls("error", 0.0, _clip(answer), explanation)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "score": self.score, "answer": self.answer,
                "explanation": self.explanation}


def _clip(text: str | None, limit: int = 200) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


Check = Callable[[Any, Any, "Mapping[str, Any] | None"], Verdict]


@dataclass(frozen=True)
class Kind:
    name: str
    factory: Callable[..., Check]
    isolated: bool


@dataclass(frozen=True)
class BuildContext:
    """What a factory may need besides its options: the project root (for files named in options)."""

    root: Path = field(default_factory=Path.cwd)


_KINDS: dict[str, Kind] = {}
# Built-in kinds live in their own modules and are imported only when first used, so that commands
# that never verify anything (``registry list``) do not pay for re2, sympy or reasoning-gym.
_BUILTIN_MODULES = {
    "exact": "graduation.verifiers.exact",
    "regex": "graduation.verifiers.regex",
    "numeric": "graduation.verifiers.numeric",
    "math": "graduation.verifiers.mathematics",
    "json_schema": "graduation.verifiers.jsonschema_kind",
    "python": "graduation.verifiers.python_kind",
    "command": "graduation.verifiers.command",
    "reasoning_gym": "graduation.verifiers.gym",
}
ENTRY_POINT_GROUP = "graduation.verifiers"
_plugins_loaded = False


def verifier(name: str, *, isolated: bool = True) -> Callable[[Callable[..., Check]], Callable[..., Check]]:
    """Register a verifier kind. ``isolated=False`` only for checks that cannot hang or blow up memory."""

    def register(factory: Callable[..., Check]) -> Callable[..., Check]:
        existing = _KINDS.get(name)
        if existing is not None and existing.factory is not factory and \
                getattr(existing.factory, "__qualname__", None) != getattr(factory, "__qualname__", None):
            raise VerifierError(f"verifier kind {name!r} is registered twice "
                                f"({existing.factory.__module__} and {factory.__module__})")
        _KINDS[name] = Kind(name, factory, isolated)
        return factory

    return register


def get_kind(name: str) -> Kind:
    """The registered kind ``name`` (built-in, or from a plugin). Raises ``VerifierError`` with a hint."""
    if name not in _KINDS and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    if name not in _KINDS:
        _load_plugins()
    if name not in _KINDS:
        known = sorted(set(_BUILTIN_MODULES) | set(_KINDS))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known kinds: " + ", ".join(known)
        raise VerifierError(f"unknown verifier kind {name!r} ({hint}; plugins register kinds under the "
                            f"{ENTRY_POINT_GROUP!r} entry point group)")
    return _KINDS[name]


def kinds() -> list[str]:
    """Every kind that can be built: the built-ins and those of installed plugins."""
    _load_plugins()
    return sorted(set(_BUILTIN_MODULES) | set(_KINDS))


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plugin must not take the built-in kinds down with it
            raise VerifierError(f"the verifier plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from None
        if callable(loaded) and ep.name not in _KINDS:
            verifier(ep.name)(loaded)


@dataclass(frozen=True)
class Verifier:
    """A built verifier: call it on (output, reference, row) to get a ``Verdict``."""

    name: str
    kind: str
    role: str
    version: str
    options: Mapping[str, Any]
    isolated: bool
    check: Check = field(repr=False, compare=False)
    root: str = "."
    fixtures: str | None = None  # the hash of the ``files`` it reads, as built (None: it lists none)
    packages: tuple[tuple[str, str], ...] = ()  # (name, version) of the packages its kind runs (math-verify ...)

    @property
    def identity(self) -> str:
        """Hash of what decides a verdict: kind, version, options, and the fingerprint a kind may give its
        check (the python kind: its module's source), but not the verifier's name or role."""
        return sha256_json({"kind": self.kind, "version": self.version, "options": dict(self.options),
                            "fingerprint": getattr(self.check, "fingerprint", None),
                            **({"fixtures": self.fixtures} if self.fixtures is not None else {}),
                            **({"packages": dict(self.packages)} if self.packages else {})})

    def payload(self) -> dict[str, Any]:
        """What a worker process needs to rebuild this verifier."""
        return {"name": self.name, "kind": self.kind, "role": self.role, "version": self.version,
                "options": dict(self.options), "root": self.root}

    def __call__(self, output: Any, reference: Any, row: Mapping[str, Any] | None = None) -> Verdict:
        """Run the check in this process, turning any exception into an ``error`` verdict."""
        return safe_call(self.check, output, reference, row)


def safe_call(check: Check, output: Any, reference: Any, row: Mapping[str, Any] | None) -> Verdict:
    try:
        result = check(output, reference, row)
    except RecursionError:
        return Verdict.error("input too deeply nested")
    except MemoryError:
        return Verdict.error("memory limit exceeded")
    except Exception as exc:  # a verifier bug or hostile input is an error verdict, never a crash
        return Verdict.error(f"{type(exc).__name__}: {_clip(str(exc), 300)}")
    if not isinstance(result, Verdict):
        return Verdict.error(f"the check returned {type(result).__name__}, not a Verdict")
    return result


def build(spec: VerifierSpec | Mapping[str, Any], root: Path | str | None = None) -> Verifier:
    """Build a verifier from its declaration. Raises ``VerifierError`` naming every bad option."""
    if not isinstance(spec, VerifierSpec):
        try:
            spec = VerifierSpec.model_validate(dict(spec))
        except Exception as exc:
            raise VerifierError(f"invalid verifier declaration: {exc}") from None
    kind = get_kind(spec.kind)
    options = dict(spec.options)
    files = options.get("files")
    if files is not None and not (isinstance(files, list) and all(isinstance(f, str) and f for f in files)):
        raise VerifierError(f"verifier {spec.name!r}: option files must be a list of project-relative paths (the "
                            f"fixtures it reads), got {files!r}")
    # ``files`` is every kind's option: the fixtures a verifier reads, hashed into the domain's identity
    _bind_options(spec.name, kind, {k: v for k, v in options.items() if k != "files"})
    root_path = Path(root) if root is not None else Path.cwd()
    kwargs = {k: v for k, v in options.items() if k != "files"}
    if "context" in inspect.signature(kind.factory).parameters:
        kwargs["context"] = BuildContext(root_path)
    try:
        check = kind.factory(**kwargs)
    except VerifierError as exc:
        raise VerifierError(f"verifier {spec.name!r} (kind {spec.kind}): {exc}") from None
    except (TypeError, ValueError) as exc:
        raise VerifierError(f"verifier {spec.name!r} (kind {spec.kind}): bad options {options!r}: {exc}") from None
    return Verifier(spec.name, spec.kind, spec.role.value, spec.version, options, kind.isolated, check,
                    str(root_path), _fixtures_hash(files, root_path) if files else None, _packages(spec.kind))


def _packages(kind: str) -> tuple[tuple[str, str], ...]:
    """The installed versions of the packages whose code decides this kind's verdicts (in the verdict cache key:
    a verdict cached by math-verify 0.8 never answers for 0.9)."""
    from importlib.metadata import PackageNotFoundError, version

    from graduation.identity import KIND_PACKAGES

    out = []
    for name in KIND_PACKAGES.get(kind, ()):
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def _fixtures_hash(files: list[str], root: Path) -> str:
    """The fixtures' content as they are now (in the verdict cache key: a verdict cached while a fixture was
    edited never answers for the fixture put back)."""
    import hashlib

    out = []
    for name in files:
        try:
            out.append([name, hashlib.sha256((root / name).read_bytes()).hexdigest()])
        except (OSError, ValueError):
            out.append([name, None])
    return sha256_json(out)


#: Options every kind takes, besides its factory's own: ``files``, the fixtures a verifier reads (hashed into
#: the domain's identity).
COMMON_OPTIONS = ("files",)


def _bind_options(name: str, kind: Kind, options: dict[str, Any]) -> None:
    params = {p.name: p for p in inspect.signature(kind.factory).parameters.values()
              if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "context"}
    options = {k: v for k, v in options.items() if k not in COMMON_OPTIONS}
    problems = []
    for key in options:
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "allowed: " + (", ".join(sorted(params)) or "none")
            problems.append(f"unknown option {key!r} ({hint})")
    for pname, p in params.items():
        if p.default is inspect.Parameter.empty and pname not in options:
            problems.append(f"missing option {pname!r} (add options: {{{pname}: ...}})")
    if problems:
        raise VerifierError(f"verifier {name!r} (kind {kind.name}): " + "; ".join(problems))


def text_of(output: Any, *, limit: int = MAX_OUTPUT_CHARS) -> tuple[str | None, Verdict | None]:
    """An output as text, or the verdict that refuses it (missing, too long, not valid UTF-8).

    The common case (a short ASCII string) returns at once: it is on every verifier's hot path.
    """
    if type(output) is str and len(output) <= limit and output.isascii():
        return output, None
    if output is None:
        return None, Verdict.of(False, explanation="no output")
    if isinstance(output, bytes):
        try:
            output = output.decode("utf-8")
        except UnicodeDecodeError:
            return None, Verdict.error("output is not valid UTF-8")
    elif not isinstance(output, str):
        output = str(output)
    if len(output) > limit:
        return None, Verdict.of(False, explanation=f"output too long ({len(output):,} characters > {limit:,})")
    if _has_surrogates(output):
        return None, Verdict.error("output is not valid UTF-8")
    return output, None


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def reference_text(reference: Any) -> str:
    """A reference as the text a model would write for it."""
    if isinstance(reference, str):
        return reference
    if reference is None:
        return ""
    import json

    if isinstance(reference, (dict, list)):
        return json.dumps(reference, ensure_ascii=False, sort_keys=True)
    return str(reference)


def compile_extractor(pattern: str | None, option: str = "extract"):
    """An re2 pattern that pulls the answer out of an output (its first group, or the whole match)."""
    if pattern is None:
        return None
    compiled = compile_re2(pattern, option=option)

    def extract(text: str) -> str | None:
        found = None
        for found in compiled.finditer(text):
            pass  # the last match: models state their final answer last
        if found is None:
            return None
        if compiled.groups:
            value = found.group(1)
            return value if value is not None else found.group(0)
        return found.group(0)

    return extract


def compile_re2(pattern: str, options: Any = None, *, option: str = "pattern") -> Any:
    """Compile an re2 pattern quietly (nothing logged on stderr); a bad one is a ``VerifierError`` whose
    message is re2's reason in plain words, e.g. ``missing ): (ab``."""
    import re2

    if options is None:
        options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except Exception as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise VerifierError(f"option {option}: invalid regular expression {pattern!r}: {reason} "
                            "(re2 syntax: no look-around or backreferences)") from None
