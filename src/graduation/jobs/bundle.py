"""A job directory is a self-contained bundle: what a run reads is inside it, by paths relative to it.

    files = project_files(hashes)                      the domain version's files to copy (its data_hashes)
    copy_project(bundle, root, files, policy_path, policy)   -> bundle/project/ (domain files) + its policy
    model_dir = local_model_dir(model, root)           a model directory inside the project, to copy, or None
    where = locate(job_dir)                            BundleSite: in its project, or copied elsewhere

Layout of ``registry/jobs/<job>/`` (sealed, every file hashed into the manifest the registry keeps):

* ``project/``: a copy of every file the domain version's identity covers (ground truth and eval data,
  controls, python verifier modules and their local imports, command scripts, schemas, ``options.files``
  fixtures), at the same project-relative paths, plus ``project/policies/`` (the policy that approved the
  job and its ``allowed_signers``). Verifiers and rewards are built with ``project/`` as their root, so the
  domain identity check of a decision compares these copies with the hashes the registry holds. Files a
  domain reaches outside the project (``allowed_roots`` directories, executables found on PATH) are not
  copied: they are checked at the path the domain names, on the machine that runs the job.
* ``model/``: the starting model when it is a directory inside the project (the tiny model once built, the
  checkpoint of the job an SFT set was crystallised from). A hub id or a path outside the project is named
  as given; an unbuilt ``tiny:`` model is built by ``registry jobs run`` into ``output/base-model``.
* ``output/`` and ``logs/`` (top level only) are what a run writes; nothing else may appear or change.

Where the registry is: ``--db URL`` or ``REGISTRY_DB_URL`` when given; else, when the bundle still sits at
``<project>/registry/jobs/<job>``, that project's embedded registry. A bundle copied elsewhere without a
registry refuses to start (exit 2): the seal and the decision live in the registry, so a copied bundle is
checked against the same manifest and re-decided on the registry's current evidence, under the policy it
carries (its digest must be the one the job was approved under), or the one given by ``--policy``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graduation.errors import InputError
from graduation.identity import EXEC_PREFIX, PACKAGE_PREFIX
from graduation.models import manifest
from graduation.policy.model import _allowed_signers_name
from graduation.store.engine import default_url
from graduation.training.models import TINY_PREFIX, tiny_dir

PROJECT_DIR = "project"
MODEL_DIR = "model"
BASE_MODEL_RUNTIME = "output/base-model"
#: Top-level directories a run writes into; not part of what was approved.
RUNTIME_DIRS = ("output", "logs")


def project_files(hashes: dict[str, str]) -> list[str]:
    """The project-relative files of a domain version's identity (no packages, executables or absolute paths)."""

    out = []
    for name in sorted(hashes):
        if name.startswith((PACKAGE_PREFIX, EXEC_PREFIX)):
            continue
        path = Path(name)
        if path.is_absolute() or ".." in path.parts:  # under an allowed_roots directory: checked where it is
            continue
        out.append(path.as_posix())
    return out


def copy_project(bundle: Path, root: Path, files: list[str], policy_path: Path, policy: Any) -> str:
    """Copy the domain's files and the policy into ``bundle/project``; returns the policy's bundle-relative path.

    Each file is copied and then hashed again against the version's hash by the caller's seal (a file that
    changed on disk since registration makes the launch-time decision deny, as in the project)."""
    target = Path(bundle) / PROJECT_DIR
    for rel in files:
        src = Path(root) / rel
        if not src.is_file():
            raise InputError(f"{rel}: a file of the domain's registered version is missing from the project; "
                             "restore it or register the domain again")
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    policies = target / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    name = Path(policy_path).name
    shutil.copyfile(policy_path, policies / name)
    if policy.allowed_signers:
        signers = _allowed_signers_name(Path(policy_path).read_text(encoding="utf-8"))
        (policies / signers).write_text(policy.allowed_signers, encoding="utf-8")
    return f"{PROJECT_DIR}/policies/{name}"


def local_model_dir(model: str, root: Path) -> Path | None:
    """The model's directory when it lies inside the project (to be copied into the bundle), else None.

    ``tiny:<name>`` is its built directory under ``registry/models`` when built; a path (relative to the
    project, or absolute) counts when it is a directory under the project root."""

    root = Path(root).resolve()
    if model.startswith(TINY_PREFIX):
        built = tiny_dir(root, model[len(TINY_PREFIX):])
        return built if (built / "config.json").is_file() else None
    candidate = Path(model)
    candidate = candidate if candidate.is_absolute() else root / candidate
    try:
        resolved = candidate.resolve()
        resolved.relative_to(root)
    except (ValueError, OSError):
        return None
    return resolved if resolved.is_dir() else None


def copy_model(bundle: Path, source: Path) -> str:
    """Copy a model directory into ``bundle/model`` (files only; a symbolic link is refused)."""

    manifest(source)  # refuses symbolic links and empty directories, naming them
    shutil.copytree(source, Path(bundle) / MODEL_DIR, symlinks=False)
    return MODEL_DIR


def model_label(model: str, root: Path) -> str:
    """How job.yaml names a model: a path inside the project as a project-relative path, anything else as given."""
    candidate = Path(model)
    if not candidate.is_absolute():
        return model
    try:
        return candidate.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return model


@dataclass(frozen=True)
class BundleSite:
    """Where a bundle is: ``project`` is the project it sits in (``<project>/registry/jobs/<job>``), or None."""

    job_dir: Path
    project: Path | None

    @property
    def files_root(self) -> Path:
        return self.job_dir / PROJECT_DIR


def locate(job_dir: Path) -> BundleSite:
    """The bundle at ``job_dir`` and the project it sits in, if it is still in one."""
    job_dir = Path(job_dir).resolve()
    jobs = job_dir.parent
    if jobs.name == "jobs" and jobs.parent.name == "registry":
        return BundleSite(job_dir, jobs.parent.parent)
    return BundleSite(job_dir, None)


def registry_url(site: BundleSite, given: str | None) -> str:
    """The registry a bundle's launch checks against: the one given, else its project's embedded one."""
    if given:
        return given
    if site.project is not None and (site.project / "registry" / "registry.db").is_file():
        return default_url(site.project)
    raise InputError(f"{site.job_dir}: this job directory is not inside its project, and no registry was named; "
                     "the seal and the decision are checked against the registry: set REGISTRY_DB_URL (or pass "
                     "--db URL) to the registry the job was generated in")


__all__ = ["BASE_MODEL_RUNTIME", "BundleSite", "MODEL_DIR", "PROJECT_DIR", "RUNTIME_DIRS", "copy_model",
           "copy_project", "local_model_dir", "locate", "model_label", "project_files", "registry_url"]
