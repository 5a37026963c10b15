"""Deep checks of loaded domain files: what the schema alone cannot see, found before anything is stored.

    problems = check_domains(loaded, root)          # [] when every domain would work
    if problems: raise SpecError(problems)

The schema (``spec.py``) checks shapes; this module checks that a domain would actually run:

- each verifier's ``kind`` is a registered kind (with a did-you-mean), and its ``options`` bind to that
  kind's factory (unknown options, missing ones, wrong values such as a regex that does not compile);
- built-in kinds are built here, in this process (they are our code); a ``python`` verifier, or a kind
  added by a plugin, is built inside an isolated worker of ``VerifierPool``: the domain owner's module is
  imported there, never in the process that writes the registry;
- each slice's ``when`` compiles as CEL and evaluates to true or false on the first rows of the ground truth
  (a field it names that no row has is reported);
- the first rows of every ground truth source hold the declared ``prompt_field`` and ``answer_field``
  (and ``id_field`` when declared); the first rows of every controls file hold ``output``.

Each problem is a ``Problem`` with file:line:column of the offending key in the domain file, its field, and
what to do. Reading is bounded: at most ``SAMPLE_ROWS`` rows of each data file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graduation.cel_loader import load_cel
from graduation.errors import DataError, InputError, Problem, VerifierError
from graduation.rows import ReadReport, iter_rows
from graduation.verifiers.base import Verifier, _BUILTIN_MODULES, _bind_options, build, get_kind
from graduation.verifiers.pool import VerifierPool
from graduation.yamlsource import Located, load_yaml

SAMPLE_ROWS = 20
_MAYBE_OUTPUT_FIELD = "no ground truth row tried"


def check_domains(loaded: Sequence[Any], root: Path, *, pool: Any = None,
                  warnings: list[Problem] | None = None) -> list[Problem]:
    """Every problem of every loaded domain (``LoadedDomain`` items); starts a pool only when one is needed.

    ``warnings`` collects what may be right after all: a slice field that no ground truth row has (it may
    come from the output rows, which are merged over the ground truth row).
    """
    problems: list[Problem] = []
    remote: list[tuple[Any, Located, int]] = []
    for item in loaded:
        located = _locate(item, root)
        problems += _check_verifiers(item, located, root, remote)
        rows = _sample_ground_truth(item, located, root, problems)
        found = _check_slices(item, located, rows)
        problems += [p for p in found if not p.message.startswith(_MAYBE_OUTPUT_FIELD)]
        if warnings is not None:
            warnings += [p for p in found if p.message.startswith(_MAYBE_OUTPUT_FIELD)]
    if remote:
        problems += _build_remote(remote, root, pool)
    return problems


def _locate(item: Any, root: Path) -> Located:
    path = Path(item.source_file)
    if not path.is_absolute():
        path = Path(root) / path
    try:
        return load_yaml(path.read_text("utf-8"), item.source_file)
    except Exception:  # it loaded a moment ago; without positions, problems still name the file
        return Located(None, item.source_file)


# -- verifiers ---------------------------------------------------------------------------------------

def _check_verifiers(item: Any, located: Located, root: Path, remote: list) -> list[Problem]:
    problems: list[Problem] = []
    for i, spec in enumerate(item.spec.verifiers):
        where = ("verifiers", i)
        try:
            kind = get_kind(spec.kind)
        except VerifierError as exc:
            problems.append(located.problem(where + ("kind",), str(exc),
                                            "`registry verifiers kinds` lists the kinds and their options"))
            continue
        try:
            _bind_options(spec.name, kind, dict(spec.options))
        except VerifierError as exc:
            problems.append(located.problem(_option_path(where, spec.options, str(exc)), str(exc),
                                            f"`registry verifiers kinds {spec.kind}` shows its options"))
            continue
        if spec.kind == "python" or spec.kind not in _BUILTIN_MODULES:
            remote.append((item, located, i))  # the owner's code: imported in an isolated worker only
            continue
        try:
            build(spec, root)
        except VerifierError as exc:
            problems.append(located.problem(_option_path(where, spec.options, str(exc)), _strip(exc, spec),
                                            f"fix the option, or see `registry verifiers kinds {spec.kind}`"))
    return problems


def _option_path(where: tuple, options: Mapping[str, Any], message: str) -> tuple:
    """The position of the option a message names (``option pattern: ...``), else of ``options``."""
    for key in options:
        if f"option {key}:" in message or f"option {key!r}" in message or f"option {key} " in message:
            return where + ("options", key)
    return where + ("options",) if options else where


def _strip(exc: Exception, spec: Any) -> str:
    text = str(exc)
    prefix = f"verifier {spec.name!r} (kind {spec.kind}): "
    return text[len(prefix):] if text.startswith(prefix) else text


_BUILD_FAILED = "verifier could not be built in the worker: "


def _build_remote(remote: list, root: Path, pool: Any) -> list[Problem]:
    """Build python (and plugin) verifiers inside the isolated pool; report those that do not build."""

    problems: list[Problem] = []
    own = pool is None
    active = VerifierPool(1, timeout=30.0) if own else pool
    try:
        for item, located, i in remote:
            spec = item.spec.verifiers[i]
            probe = Verifier(spec.name, spec.kind, spec.role.value, spec.version, dict(spec.options),
                             True, None, str(root))  # type: ignore[arg-type]
            verdict = active.verify(probe, [("", "", None)])[0]
            explanation = verdict.explanation or ""
            if verdict.verdict == "error" and explanation.startswith(_BUILD_FAILED):
                reason = explanation[len(_BUILD_FAILED):]
                reason = reason.split(": ", 1)[1] if reason.startswith("VerifierError: ") else reason
                problems.append(located.problem(
                    _option_path(("verifiers", i), spec.options, reason), _strip(Exception(reason), spec),
                    "python verifiers are imported from the project root; check the module path and "
                    "that it imports cleanly (`python -c 'import MODULE'` from the project root)"))
            elif verdict.verdict == "error" and get_kind(spec.kind).isolated and "timed out" in explanation:
                problems.append(located.problem(("verifiers", i), f"building the verifier timed out: {explanation}",
                                                "importing the module must be quick and side-effect free"))
    finally:
        if own:
            active.close()
    return problems


# -- data --------------------------------------------------------------------------------------------

def _sample(path: Path, display: str) -> list[dict[str, Any]]:
    rows = []
    report = ReadReport(display)
    for _line, row in iter_rows(path, report, display=display):
        rows.append(row)
        if len(rows) >= SAMPLE_ROWS:
            break
    report.raise_if_any()
    return rows


def _sample_ground_truth(item: Any, located: Located, root: Path, problems: list[Problem]) -> list[dict]:
    """The first rows of each source, checked for the task's fields; returns them all (for slices)."""
    task = item.spec.task
    every: list[dict] = []
    for i, source in enumerate(item.spec.ground_truth):
        try:
            rows = _sample(Path(root) / source.path, source.path)
        except (DataError, InputError) as exc:
            problems.append(located.problem(("ground_truth", i, "path"), str(exc),
                                            "fix the data file (one JSON object per line for .jsonl)"))
            continue
        every += rows
        if not rows:
            problems.append(located.problem(("ground_truth", i, "path"), f"{source.path} holds no rows",
                                            "ground truth needs at least one row"))
            continue
        fields = sorted({k for row in rows for k in row})
        wanted = [("prompt_field", task.prompt_field), ("answer_field", task.answer_field)]
        if task.id_field:
            wanted.append(("id_field", task.id_field))
        for name, value in wanted:
            missing = sum(value not in row for row in rows)
            if missing:
                close = difflib.get_close_matches(value, fields, n=1)
                hint = (f"did you mean {close[0]!r}? " if close else "") + \
                    f"set task.{name} to the field that holds it; the rows have: {', '.join(fields[:12])}"
                problems.append(located.problem(("task", name), f"{source.path}: {missing} of the first "
                                                f"{len(rows)} rows have no {value!r} field", hint))
    for i, spec in enumerate(item.spec.verifiers):
        if not spec.controls:
            continue
        try:
            rows = _sample(Path(root) / spec.controls, spec.controls)
        except (DataError, InputError) as exc:
            problems.append(located.problem(("verifiers", i, "controls"), str(exc), "fix the controls file"))
            continue
        if any("output" not in row for row in rows):
            problems.append(located.problem(("verifiers", i, "controls"), f"{spec.controls}: rows without an "
                                            "'output' field", "each control row needs 'output' (the "
                                            "known-wrong answer) and the prompt or id it answers"))
    return every


def _check_slices(item: Any, located: Located, rows: list[dict]) -> list[Problem]:
    problems: list[Problem] = []
    fields = sorted({k for row in rows for k in row})
    for i, sl in enumerate(item.spec.slices):
        if sl.when is None:
            if rows and not any(sl.field in row for row in rows):
                problems.append(located.problem(("slices", i, "field"), f"{_MAYBE_OUTPUT_FIELD} has the field "
                                                f"{sl.field!r}", f"fine if the output rows carry it; ground "
                                                f"truth fields: {', '.join(fields[:12])}"))
            continue
        try:
            program = load_cel().compile(sl.when)
        except Exception as exc:
            problems.append(located.problem(("slices", i, "when"), f"does not compile as CEL: "
                                            f"{_cel_reason(str(exc))}", "CEL compares with ==, joins with && "
                                            "and ||, quotes strings: kind == 'single'"))
            continue
        if not rows:
            continue
        errors, results = [], []
        for row in rows:
            try:
                results.append(program.execute(dict(row)))
            except Exception as exc:
                errors.append(str(exc))
        if not results:
            undefined = "Undefined variable" in errors[0] or "no such key" in errors[0].lower()
            problems.append(located.problem(("slices", i, "when"), (
                f"{_MAYBE_OUTPUT_FIELD} has what it reads: " if undefined else "fails on every ground truth row "
                "tried: ") + f"{errors[0].split('. ')[0]}",
                                            f"a slice reads the fields of the row (output row merged over its "
                                            f"ground truth row); fields here: {', '.join(fields[:12])}"))
        elif any(not isinstance(r, bool) for r in results):
            bad = next(r for r in results if not isinstance(r, bool))
            problems.append(located.problem(("slices", i, "when"), f"gives {bad!r}, not true or false",
                                            "a slice condition must be a comparison, e.g. kind == 'single'"))
    return problems


def _cel_reason(message: str) -> str:
    """The first line of cel's parse error, without the echo of the whole expression."""
    for line in message.splitlines():
        if "Syntax error" in line or "ERROR" in line:
            return line.split("ERROR: ", 1)[-1].replace("<input>:", "column ")
    return message.splitlines()[0] if message else message


__all__ = ["SAMPLE_ROWS", "check_domains"]
