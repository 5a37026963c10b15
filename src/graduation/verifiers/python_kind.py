"""``python``: a function ``module:function(output, reference, row) -> bool | float`` written by the domain.

It runs only in the sandboxed worker pool (``graduation.verifiers.sandbox``): the function is the domain
owner's code, and the process that holds the registry never imports it. Built outside a worker, the check
only knows the module's source hash (read from disk, never imported) and refuses to run. The output it
receives is untrusted data, never code. A float is a score: it passes at ``threshold`` or above.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import math
import sys
from pathlib import Path
from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers import runtime
from graduation.verifiers.base import BuildContext, Check, Verdict, verifier


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """A project module's loader that never reads bytecode: a ``.pyc`` planted in the project's ``__pycache__``
    with the header of the hashed source (its mtime and size) would otherwise run instead of that source."""

    def path_stats(self, path: str):
        raise OSError("project modules are compiled from their source")  # get_code then skips the cache


_SOURCE_ONLY_ROOTS: list[Path] = []


def _source_only(root: Path) -> None:
    """Modules found under ``root`` are compiled from their source (extension modules and sourceless files, which
    the domain's identity covers when Python would pick them, load as usual)."""
    if root in _SOURCE_ONLY_ROOTS:
        return
    if not _SOURCE_ONLY_ROOTS:
        m = importlib.machinery
        details = [(m.ExtensionFileLoader, m.EXTENSION_SUFFIXES), (_SourceOnlyLoader, m.SOURCE_SUFFIXES),
                   (m.SourcelessFileLoader, m.BYTECODE_SUFFIXES)]

        def hook(entry: str):
            where = Path(entry or ".").resolve()
            if any(where == r or where.is_relative_to(r) for r in _SOURCE_ONLY_ROOTS):
                return m.FileFinder(entry, *details)
            raise ImportError("not a project directory")

        sys.path_hooks.insert(0, hook)
    _SOURCE_ONLY_ROOTS.append(root)
    for entry in [e for e in sys.path_importer_cache if e]:  # finders made before the hook: made again
        try:
            where = Path(entry).resolve()
        except (OSError, ValueError):
            continue
        if where == root or where.is_relative_to(root):
            del sys.path_importer_cache[entry]


def load_function(target: str, root: Path):
    if not isinstance(target, str) or target.count(":") != 1:
        raise VerifierError(f"option function must look like 'package.module:function', got {target!r}")
    module_name, attr = target.split(":")
    root_path = Path(root).resolve()
    root_str = str(root_path)
    _source_only(root_path)
    if root_str in sys.path:
        sys.path.remove(root_str)
    sys.path.insert(0, root_str)  # the project's own module wins over one of the same name elsewhere
    _forget_foreign(module_name, root_path)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise VerifierError(f"option function: cannot import {module_name!r} ({type(exc).__name__}: {exc}); "
                            f"it must be importable from the project root {root_str}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise VerifierError(f"option function: {module_name!r} has no callable {attr!r}")
    return fn


def _forget_foreign(module_name: str, root: Path) -> None:
    """Drop an already imported module of this name that is not the project's own file.

    Two projects (or two test directories) may both have a ``checks.py``; without this, the first one
    imported would answer for both.
    """
    parts = module_name.split(".")
    if not ((root / Path(*parts)).with_suffix(".py").is_file() or (root / Path(*parts)).is_dir()):
        return
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        loaded = sys.modules.get(name)
        file = getattr(loaded, "__file__", None)
        if loaded is not None and file is not None and not Path(file).resolve().is_relative_to(root):
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            importlib.invalidate_caches()
            return


@verifier("python")
def python(*, function: str, threshold: float = 1.0, context: BuildContext = BuildContext()) -> Check:
    """Call ``function(output, reference, row)``; ``True``/score >= threshold passes."""

    threshold = float(threshold)
    if not runtime.IN_WORKER:
        source = find_source(function, context.root)

        def outside(output: Any, reference: Any, row=None) -> Verdict:
            return Verdict.error(f"{function}: python verifiers run only in the sandboxed worker pool")

        from graduation.identity import code_fingerprint

        # the module and every local module it imports (a helper edited changes the cache key too)
        outside.fingerprint = f"{_file_hash(source)}:{code_fingerprint('python', {'function': function}, context.root)}"  # type: ignore[attr-defined]  # noqa: E501
        return outside
    fn = load_function(function, context.root)

    def check(output: Any, reference: Any, row=None) -> Verdict:
        result = fn(output, reference, dict(row) if row is not None else None)
        if isinstance(result, Verdict):
            return result
        if isinstance(result, bool):
            return Verdict.of(result, explanation=None if result else f"{function} returned False")
        if isinstance(result, (int, float)) and math.isfinite(float(result)):
            score = float(result)
            ok = score >= threshold
            return Verdict.of(ok, score=score, explanation=None if ok else f"score {score:g} < {threshold:g}")
        return Verdict.error(f"{function} returned {type(result).__name__}, expected bool or a finite number")

    check.fingerprint = _source_hash(fn)  # editing the function invalidates its cached verdicts
    return check


def find_source(target: str, root: Path) -> Path:
    """The file that defines ``target``'s module, found on disk without importing anything."""
    if not isinstance(target, str) or target.count(":") != 1 or not all(target.split(":")):
        raise VerifierError(f"option function must look like 'package.module:function', got {target!r}")
    parts = target.split(":")[0].split(".")
    if not all(p.isidentifier() for p in parts):
        raise VerifierError(f"option function: {target.split(':')[0]!r} is not a module name")
    for base in [Path(root).resolve(), *(Path(p) for p in sys.path if p)]:
        stem = base.joinpath(*parts)
        for candidate in (stem.with_suffix(".py"), stem / "__init__.py"):
            if candidate.is_file():
                return candidate
    raise VerifierError(f"option function: no module {'.'.join(parts)!r} under the project root {root} "
                        "(python verifiers are the project's own modules)")


def _file_hash(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _source_hash(fn) -> str | None:
    import hashlib
    import inspect

    try:
        source = Path(inspect.getfile(fn)).read_bytes()
    except (TypeError, OSError):
        return None
    return hashlib.sha256(source).hexdigest()
