"""Where a job's model comes from: a local directory, a cached hub id, or a tiny base built on demand.

``tiny:arithmetic`` names the demo's tiny Llama (``graduation.training.tiny``) pretrained on noisy sums; it is
built once under ``<project>/registry/models/tiny-arithmetic`` and reused. Anything else is handed to
``from_pretrained`` offline (``HF_HUB_OFFLINE=1``), which fails with a clear error when it is not there.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

TINY_PREFIX = "tiny:"
TINY_CORPORA = ("arithmetic",)


def tiny_dir(root: Path, name: str) -> Path:
    return Path(root) / "registry" / "models" / f"tiny-{name}"


def resolve_model(model: str, root: Path) -> str:
    """A path or id that ``from_pretrained`` can load; builds ``tiny:<corpus>`` the first time."""
    if not model.startswith(TINY_PREFIX):
        candidate = Path(model)
        if not candidate.is_absolute() and (Path(root) / candidate).exists():
            return str(Path(root) / candidate)
        return model
    name = model[len(TINY_PREFIX):]
    if name not in TINY_CORPORA:
        raise ValueError(f"base_model {model!r}: unknown tiny model; use one of "
                         + ", ".join(TINY_PREFIX + c for c in TINY_CORPORA))
    out = tiny_dir(root, name)
    if (out / "config.json").is_file():
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".tiny-{name}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").is_file():
            build_tiny(name, out)
    return str(out)


def build_tiny(name: str, out: Path) -> Path:
    """Build into a temporary sibling and rename, so a half-built model is never picked up."""
    import shutil
    import tempfile

    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base  # lazy: torch

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if name == "arithmetic":
            build_tiny_base(tmp, arithmetic_corpus(6000, p_correct=0.35, habit="negate", max_operand=9, seed=0),
                            TinyConfig(pretrain_steps=800))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["TINY_PREFIX", "build_tiny", "resolve_model", "tiny_dir"]
