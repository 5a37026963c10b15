"""What a domain version's identity covers on disk, and whether the disk still matches it.

``domain_files(spec, root)`` names every file that decides a verdict, besides the domain file itself:

* ground truth and controls (``referenced_paths``);
* ``python`` verifiers: the module of ``options.function`` and every local module it imports, transitively
  (modules under the project root; the standard library and installed packages are not files of the domain);
* ``command`` verifiers: each argv element that names an existing file (the script), and the executable
  itself (``argv[0]``, found on PATH when it is not a path);
* ``json_schema`` verifiers: ``options.schema_file``;
* any verifier: ``options.files``, the fixtures it reads (a SQL verifier's database, say).

and ``package_versions(spec)`` the installed versions of the packages that verifier kinds run
(``pkg:math-verify`` ...). Both go into the version's ``data_hashes``, so they are in its content hash
and its basis hash: change one byte of a verifier, and earlier evidence no longer counts.

``check_files(root, hashes, cache)`` compares the disk with a version's hashes before a decision:
a file whose (size, mtime, ctime, inode, device) is unchanged since it was hashed at registration (kept
in the version's chained row) is not read again (ctime cannot be set back by a user); any other is
hashed in full. No cache file outside the database takes part.
"""

from __future__ import annotations

import ast
import hashlib
import shutil
from collections.abc import Iterable
from stat import S_ISREG
from pathlib import Path
from typing import Any

PACKAGE_PREFIX = "pkg:"
EXEC_PREFIX = "exec:"
#: Packages whose code decides verdicts of a verifier kind.
KIND_PACKAGES: dict[str, tuple[str, ...]] = {
    "math": ("math-verify",),
    "reasoning_gym": ("reasoning-gym",),
    "json_schema": ("jsonschema",),
}


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _rel(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def _lexical_rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as written, symlinks not followed (hashing ``root / rel`` reads the file a
    link points to, wherever that is, and the gate reads it the same way); absolute when not under ``root``."""
    for base in (root, root.resolve()):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return str(path)


def _import_suffixes() -> list[str]:
    import importlib.machinery as m

    # the order of Python's own FileFinder: extension modules, then source, then bytecode
    return [*m.EXTENSION_SUFFIXES, *m.SOURCE_SUFFIXES, *m.BYTECODE_SUFFIXES]


def module_file(name: str, root: Path) -> Path | None:
    """The file Python imports for module ``a.b.c`` under ``root``, if any, found as Python's finder finds it:
    a package (``a/b/c/__init__`` + any suffix) before a module, an extension module (``c.*.so``) before
    ``c.py``. A file planted where Python would look first is then what the identity covers."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    base = root.joinpath(*parts)
    suffixes = _import_suffixes()
    for suffix in suffixes:
        candidate = base / f"__init__{suffix}"
        if candidate.is_file():
            return candidate
    for suffix in suffixes:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _package_inits(name: str, root: Path) -> list[Path]:
    parts = name.split(".")
    out = []
    for i in range(1, len(parts)):
        init = module_file(".".join(parts[:i]), root)
        if init is not None and init.name.startswith("__init__"):
            out.append(init)
    return out


def _imports_of(tree: ast.AST, package: str) -> list[str]:
    """The module names an AST imports (``a.b`` of ``from a import b`` too: it may be a module)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def local_imports(module: str | None, root: Path, script: Path | None = None) -> list[Path]:
    """The module's file and, transitively, every module under ``root`` it imports (sorted, no repeats).

    ``script``: start from a script run as ``python SCRIPT`` instead (its directory, ``root``, comes first on
    its path): the modules it imports, not the script itself."""
    seen: dict[Path, None] = {}
    todo = [module] if module else []
    if script is not None:
        try:
            todo.extend(_imports_of(ast.parse(script.read_bytes(), str(script)), ""))
        except (SyntaxError, ValueError, OSError):
            pass  # not Python source: nothing it imports
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if path is None or path in seen:
            continue
        seen[path] = None
        for init in _package_inits(name, root):
            seen.setdefault(init, None)
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except (SyntaxError, ValueError, OSError):
            continue  # building the verifier reports it
        package = name if path.name.startswith("__init__.") else name.rpartition(".")[0]
        todo.extend(_imports_of(tree, package))
    return sorted(seen)


def shadowing_modules(base: Path) -> list[Path]:
    """Modules in ``base``, the directory first on the path of a verifier's code (the project root for a
    python verifier, a command script's own directory), named like a standard-library or installed module.

    Any import of that name, by the verifier or by the libraries it uses (``statistics`` imports
    ``_statistics``), loads the file in ``base`` instead: it is verifier code, whether or not the verifier
    names it, so the identity covers it, and one planted later is a change."""
    import importlib.machinery
    import sys

    import os

    suffixes = tuple(_import_suffixes())
    try:
        with os.scandir(base) as it:  # a directory (a package?) or a file with an import suffix: a module?
            names = sorted({e.name.split(".", 1)[0] for e in it if e.name.endswith(suffixes) or e.is_dir()})
    except OSError:
        return []
    resolved = base.resolve()
    elsewhere = None
    out: list[Path] = []
    for name in names:
        if not name.isidentifier():
            continue
        found = module_file(name, base)
        if found is None or found in out:
            continue
        shadows = name in sys.stdlib_module_names or name in sys.builtin_module_names
        if not shadows:
            if elsewhere is None:
                elsewhere = [p for p in sys.path if p and Path(p).resolve() != resolved]
            for finder in sys.meta_path:  # the path (without this directory), and finders of editable installs
                try:
                    if finder is importlib.machinery.PathFinder:
                        spec = finder.find_spec(name, elsewhere)
                    else:
                        find = getattr(finder, "find_spec", None)
                        spec = find(name, None) if find is not None else None
                except Exception:  # noqa: BLE001 - a third-party finder that fails finds nothing here
                    spec = None
                origin = getattr(spec, "origin", None)
                if spec is not None and not (origin and _under(Path(origin), base)):
                    shadows = True
                    break
        if shadows:
            out.append(found)
    return out


def _command_args(opts: dict) -> list[str]:
    import shlex

    argv = opts.get("argv")
    try:
        args = shlex.split(argv) if isinstance(argv, str) else list(argv or [])
    except ValueError:
        args = []
    return [a for a in args if isinstance(a, str)]


def _python_entry_modules(args: list[str]) -> list[str]:
    """The modules a command's Python interpreter runs or imports from its working directory without naming a
    ``.py`` file: ``-m MODULE`` and the imports of ``-c CODE`` (an interpreter named ``python...``)."""
    if not args or not Path(args[0]).name.startswith("python"):
        return []
    out: list[str] = []
    rest = args[1:]
    skip = False
    for i, arg in enumerate(rest):
        if skip:  # the value of -W or -X
            skip = False
            continue
        if arg in ("-W", "-X"):
            skip = True
            continue
        if not arg.startswith("-") or arg == "--":
            break  # a script (or its arguments) from here on
        for flag in ("-m", "-c"):
            if arg == flag or (arg.startswith(flag) and len(arg) > 2):
                value = arg[2:] if len(arg) > 2 else (rest[i + 1] if i + 1 < len(rest) else "")
                if flag == "-m":
                    out.append(value)
                else:
                    try:
                        out.extend(_imports_of(ast.parse(value), ""))
                    except (SyntaxError, ValueError):
                        pass
                return [m for m in out if m and all(p.isidentifier() for p in m.split("."))]
    return []


def python_files(spec, root: Path, memo: dict | None = None) -> list[str]:
    """The project's files that the domain's python code imports, as Python would resolve them now: a python
    verifier's module and its local imports, and the local imports of a command's ``.py`` scripts.

    ``memo``: what one run found already (a status checks every domain; many share a verifier module and
    every python verifier shares the project root), so each module is parsed and each directory scanned once."""
    memo = {} if memo is None else memo

    def once(key, compute):
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    out: list[str] = []
    bases: dict[Path, None] = {}
    for v in spec.verifiers:
        opts = v.options or {}
        if v.kind == "python" and isinstance(opts.get("function"), str) and ":" in opts["function"]:
            module = opts["function"].split(":")[0]
            for path in once(("imports", module, root), lambda: local_imports(module, root)):
                out.append(_lexical_rel(path, root))
            bases[root] = None
        if v.kind == "command":
            for name in _python_entry_modules(_command_args(opts)):  # `python -m judge`, `python -c "import judge"`
                for path in once(("imports", name, root), lambda: local_imports(name, root)):
                    out.append(_lexical_rel(path, root))
                bases[root] = None  # the working directory (the project root) is first on that path
            for arg in _command_args(opts):
                script = root / arg
                if arg.endswith(".py") and script.is_file() and _under(script, root):
                    here = script.resolve().parent
                    out.extend(_lexical_rel(p, root) for p in once(("script", str(script), root),
                                                                   lambda: local_imports(None, here, script)))
                    bases[here] = None
    for base in bases:
        out.extend(_lexical_rel(p, root) for p in once(("shadows", base), lambda: shadowing_modules(base)))
    return sorted(set(out))


def verifier_files(spec, root: Path) -> tuple[list[str], list[str]]:
    """(paths under the project, executables outside it) that the domain's verifiers read or run."""
    inside: list[str] = list(python_files(spec, root))
    outside: list[str] = []
    for v in spec.verifiers:
        opts = v.options or {}
        if v.kind == "command":
            for i, arg in enumerate(_command_args(opts)):
                candidate = root / arg
                if arg and candidate.is_file() and _under(candidate, root):
                    inside.append(_rel(candidate, root))
                elif i == 0 and arg:
                    found = shutil.which(arg) if "/" not in arg else (arg if Path(arg).is_file() else None)
                    if found:
                        outside.append(str(Path(found).resolve()))
        if v.kind == "json_schema" and isinstance(opts.get("schema_file"), str):
            inside.append(opts["schema_file"])
        files = opts.get("files")
        if isinstance(files, str):
            files = [files]
        if isinstance(files, list):
            inside.extend(f for f in files if isinstance(f, str))
    return sorted(set(inside)), sorted(set(outside))


def package_versions(spec) -> dict[str, str]:
    """``{"pkg:NAME": version}`` of the packages the domain's verifier kinds run."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {}
    for v in spec.verifiers:
        for name in KIND_PACKAGES.get(v.kind, ()):
            try:
                out[PACKAGE_PREFIX + name] = version(name)
            except PackageNotFoundError:
                out[PACKAGE_PREFIX + name] = "not installed"
    return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# -- the gate: does the disk still match? -------------------------------------------------------------

def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def file_stats(root: Path, hashes: dict[str, str]) -> dict[str, list[int]]:
    """The stat key of each hashed file (taken right after hashing, at registration)."""
    out = {}
    for name in hashes:
        if name.startswith(PACKAGE_PREFIX):
            continue
        key = _stat_key(Path(name[len(EXEC_PREFIX):]) if name.startswith(EXEC_PREFIX) else root / name)
        if key is not None:
            out[name] = key
    return out


class StatCache:
    """path -> (stat key, sha256) of files hashed before; a file is read again only when its stat changed.

    Kept in memory only, seeded from a version's chained row (``seed``): no file outside the database
    can tell the gate to skip reading a changed file.
    """

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.found: dict[Any, Any] = {}  # what ``python_files`` found in this run (modules parsed, directories)

    def seed(self, root: Path, hashes: dict[str, str], stats: dict[str, list[int]] | None) -> None:
        for name, key in (stats or {}).items():
            if name in hashes and isinstance(key, list):
                path = Path(name[len(EXEC_PREFIX):]) if name.startswith(EXEC_PREFIX) else root / name
                self.entries[str(path)] = [key, hashes[name]]

    def digest(self, file: Path) -> str | None:
        key = _stat_key(file)
        if key is None:
            return None
        name = str(file)
        hit = self.entries.get(name)
        if isinstance(hit, list) and len(hit) == 2 and hit[0] == key:
            return hit[1]
        try:
            digest = sha256_file(file)
        except OSError:
            return None
        if _stat_key(file) == key:  # unchanged while it was read
            self.entries[name] = [key, digest]
        return digest


def check_files(root: Path, hashes: dict[str, str], cache: StatCache, spec: Any = None) -> list[str]:
    """What no longer matches ``hashes`` on disk: ["data/x.jsonl changed", ...] (empty when all match).

    With ``spec`` (the version's domain), also every file its python verifiers would import now that the
    version does not cover: a package, extension module or module planted where Python looks first (the
    project root comes first on a python verifier's path) runs in place of the hashed file."""
    from importlib.metadata import PackageNotFoundError, version

    changed = []
    if spec is not None:
        changed += [f"{rel} is new: a verifier's python code would import it"
                    for rel in python_files(spec, root, cache.found) if rel not in hashes]
    for name, expected in hashes.items():
        if name.startswith(PACKAGE_PREFIX):
            try:
                have = version(name[len(PACKAGE_PREFIX):])
            except PackageNotFoundError:
                have = "not installed"
            if have != expected:
                changed.append(f"package {name[len(PACKAGE_PREFIX):]} is {have}, was {expected}")
            continue
        path = Path(name[len(EXEC_PREFIX):]) if name.startswith(EXEC_PREFIX) else root / name
        try:
            regular = S_ISREG(path.stat().st_mode)
        except OSError:
            regular = True  # missing: said below
        if not regular:  # a FIFO or a link to /dev/zero would be read forever: a change, never a hang
            changed.append(f"{path if name.startswith(EXEC_PREFIX) else name} is not a regular file")
            continue
        digest = cache.digest(path)
        if digest is None:
            changed.append(f"{path if name.startswith(EXEC_PREFIX) else name} is missing")
        elif digest != expected:
            changed.append(f"{path if name.startswith(EXEC_PREFIX) else name} changed")
    return changed


def _hash_bracketed(path: Path, name: str, stats: dict[str, list[int]] | None) -> str:
    """The file's sha256; with ``stats``, its stat key too, taken before the read and kept only when the file
    is unchanged after it: a stat taken later could vouch (on the gate's fast path) for content never hashed."""
    before = _stat_key(path) if stats is not None else None
    digest = sha256_file(path)
    if before is not None and _stat_key(path) == before:
        stats[name] = before
    return digest


def all_hashes(spec, root: Path, referenced: Iterable[str],
               stats: dict[str, list[int]] | None = None) -> tuple[dict[str, str], list[str]]:
    """(name -> sha256 or version of everything the domain's identity covers, missing files).

    ``stats``: filled with the stat key of each file that did not change while it was hashed."""
    hashes: dict[str, str] = {}
    missing: list[str] = []
    inside, outside = verifier_files(spec, root)
    for rel in sorted(set(referenced) | set(inside)):
        path = root / rel
        if not path.is_file():
            missing.append(rel)
            continue
        hashes[rel] = _hash_bracketed(path, rel, stats)
    for exe in outside:
        hashes[EXEC_PREFIX + exe] = _hash_bracketed(Path(exe), EXEC_PREFIX + exe, stats)
    hashes.update(package_versions(spec))
    return hashes, missing


def code_fingerprint(kind: str, options: Any, root: Path) -> str:
    """sha256 over the project files that are a verifier's code, as they are now: a python verifier's module and its
    local imports, a command's files named in argv and their local imports, and the modules shadowing others where
    that code runs (``python_files``). The verdict cache key covers it: a verdict cached while one of these files
    was edited never answers for the file put back (or for any other content)."""
    import json
    from types import SimpleNamespace

    root = Path(root)
    opts = dict(options) if isinstance(options, dict) else {}
    files = set(python_files(SimpleNamespace(verifiers=[SimpleNamespace(kind=kind, options=opts)]), root))
    if kind == "command":
        for arg in _command_args(opts):
            try:
                path = root / arg
                if path.is_file() and _under(path, root):
                    files.add(_lexical_rel(path, root))
            except (OSError, ValueError):
                continue
    digest = hashlib.sha256(b"graduation-verifier-code-1\n")
    for rel in sorted(files):
        try:
            content = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        except (OSError, ValueError):
            content = None
        digest.update(json.dumps([rel, content]).encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


__all__ = ["KIND_PACKAGES", "StatCache", "all_hashes", "check_files", "code_fingerprint", "file_stats", "local_imports", "package_versions",
           "python_files", "shadowing_modules", "verifier_files"]
