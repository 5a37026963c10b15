"""The project on disk: finding its root, collecting domain files, hashing the files they reference.

This is the I/O edge between the pure spec and the store.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from graduation.errors import InputError, Problem, SpecError
from graduation.identity import all_hashes
from graduation.records import LoadedDomain
from graduation.spec import DomainSpec, load_domain

def domain_files(paths: list[Path]) -> list[Path]:
    """Expand directories to their ``*.yaml``/``*.yml`` files (sorted); keep files as given."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise InputError(f"{path}: no domain files (*.yaml) in this directory; to start from the example "
                                 "of `registry init`, `cp -r examples/example.yaml examples/data domains/`")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_referenced_files(spec: DomainSpec, root: Path, source_file: str,
                          stats: dict[str, list[int]] | None = None) -> dict[str, str]:
    """SHA-256 of every file the domain's identity covers (``graduation.identity``): data, controls,
    verifier modules and their local imports, command scripts and executables, schemas, declared fixtures;
    plus the versions of verifier packages. A missing file is a located error."""

    hashes, missing = all_hashes(spec, root, spec.referenced_paths(), stats)
    problems = [Problem(f"referenced file {rel!r} does not exist", source_file,
                        hint="create it or fix the path (paths are relative to the domain file; verifier "
                             "options name paths relative to the project)") for rel in missing]
    if problems:
        raise SpecError(problems)
    return hashes


def load_project_domain(path: Path, root: Path) -> LoadedDomain:
    spec = load_domain(path, root)
    source = _display(path, root)
    stats: dict[str, list[int]] = {}  # taken around each hash: a file changed meanwhile gets no fast path
    hashes = hash_referenced_files(spec, root, source, stats)
    return LoadedDomain(spec, source, hashes, stats)


def load_many(paths: list[Path], root: Path) -> list[LoadedDomain]:
    """Load every file; collect the problems of all of them before failing, so one run shows all."""
    loaded: list[LoadedDomain] = []
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for file in domain_files(paths):
        try:
            item = load_project_domain(file, root)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if item.spec.domain in seen:
            problems.append(Problem(f"domain {item.spec.domain!r} is also declared in {seen[item.spec.domain]}",
                                    item.source_file, field="domain", hint="each domain name must be unique"))
            continue
        seen[item.spec.domain] = item.source_file
        loaded.append(item)
    if problems:
        raise SpecError(problems)
    return loaded


def _display(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def load_and_check(paths: list[Path], root: Path, *, pool=None, warnings: list | None = None) -> list[LoadedDomain]:
    """``load_many`` plus the deep checks (verifier kinds and options, regexes, python modules imported in an
    isolated worker, slice conditions, the declared fields in the first rows of the data): all problems of
    all files at once, as one ``SpecError``."""

    loaded = load_many(paths, root)
    from graduation.service.domaincheck import check_domains  # lazy: the verifier machinery, for deep checks only

    problems = check_domains(loaded, root, pool=pool, warnings=warnings)
    if problems:
        raise SpecError(problems)
    return loaded
