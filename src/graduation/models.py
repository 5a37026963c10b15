"""Model artifacts: references (``NAME``, ``NAME@V``, ``sha256:HEX``) and the digest of a model directory.

    manifest(path, progress=None) -> Manifest      sorted relative paths, each file's sha256 (streamed)
    Manifest.digest                                 ``sha256:HEX`` over the canonical manifest text
    parse_ref("sqlcoder@2") -> ModelRef             name/version or digest; ``InputError`` on bad text

The digest covers every regular file under the directory (weights, configs, tokenizer files), by its
path relative to the directory (POSIX separators, sorted) and its content: rename, add, remove or change
one byte of any file and the digest changes. Symbolic links are refused rather than followed, so that
the digest is always of what is in the directory. No torch import: hashing is plain file reading.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from graduation.errors import InputError

CHUNK = 8 << 20
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}$")
DIGEST_KINDS = ("manifest", "external", "unverified")
#: (bytes hashed so far, total bytes) after each chunk
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ModelRef:
    """What a user typed to name a model: a name with an optional version, or a digest."""

    name: str | None = None
    version: int | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest:
            return self.digest
        return f"{self.name}@{self.version}" if self.version is not None else str(self.name)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name.startswith("sha256:"):
        raise InputError(f"model name {name!r}: use letters, digits and . _ / + - (at most 128 characters, "
                         "no '@': the version is assigned by the registry), e.g. sqlcoder-7b-ft")
    return name


def check_digest(digest: str) -> str:
    text = digest.strip().lower() if isinstance(digest, str) else ""
    if not DIGEST_RE.match(text):
        raise InputError(f"digest {digest!r}: expected sha256: followed by 64 hex digits "
                         "(e.g. an OCI image digest or the sha256 of a model manifest)")
    return text


MAX_VERSION = 2**31 - 1  # what every database's integer column holds; past it a driver overflows


def parse_ref(text: str) -> ModelRef:
    """``NAME``, ``NAME@V`` or ``sha256:HEX``."""
    text = (text or "").strip()
    if text.lower().startswith("sha256:"):
        return ModelRef(digest=check_digest(text))
    name, at, version = text.partition("@")
    if at:
        if not (version.isascii() and version.isdigit()) or not 1 <= int(version) <= MAX_VERSION:
            raise InputError(f"model {text!r}: the version after '@' must be a whole number from 1 to {MAX_VERSION}, "
                             f"e.g. {name}@2")
        return ModelRef(check_name(name), int(version))
    return ModelRef(check_name(name))


@dataclass(frozen=True)
class Manifest:
    """The canonical manifest of a model directory: (relative path, sha256, size) per file, sorted."""

    files: tuple[tuple[str, str, int], ...]

    def text(self) -> str:
        return "".join(f"{sha}  {size}  {rel}\n" for rel, sha, size in self.files)

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.text().encode("utf-8")).hexdigest()

    @property
    def size(self) -> int:
        return sum(size for _r, _s, size in self.files)

    def to_list(self) -> list[dict]:
        return [{"path": rel, "sha256": sha, "size": size} for rel, sha, size in self.files]


def _files(root: Path) -> list[tuple[str, Path, int]]:
    out: list[tuple[str, Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if (base / d).is_symlink():
                raise InputError(f"{base / d}: a symbolic link inside the model directory; copy what it points "
                                 "to, so that the digest covers the files that ship")
        dirnames.sort()
        for name in filenames:
            path = base / name
            if path.is_symlink():
                raise InputError(f"{path}: a symbolic link inside the model directory; copy what it points to, "
                                 "so that the digest covers the files that ship")
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            out.append((rel, path, path.stat().st_size))
    out.sort(key=lambda item: item[0])
    return out


def manifest(path: Path | str, progress: Progress | None = None) -> Manifest:
    """Hash every file under ``path`` (streamed in 8 MiB chunks). ``InputError`` if it is not a directory."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory; --path names the model directory (weights, config, "
                         "tokenizer files)")
    files = _files(root)
    if not files:
        raise InputError(f"{root}: the model directory holds no files")
    total = sum(size for _r, _p, size in files)
    done = 0
    out = []
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    for rel, file, _size in files:
        digest = hashlib.sha256()
        size = 0
        with open(file, "rb", buffering=0) as handle:
            while True:
                n = handle.readinto(buffer)
                if not n:
                    break
                digest.update(view[:n])
                size += n
                done += n
                if progress is not None:
                    progress(done, total)
        out.append((rel, digest.hexdigest(), size))
    _check_shards(root, {rel for rel, _sha, _size in out})
    return Manifest(tuple(out))


def _check_shards(root: Path, files: set[str]) -> None:
    """Every shard a weight index names is one of the directory's hashed files: transformers (and vLLM) join the
    names an ``*.index.json`` lists to the directory as written, so ``../elsewhere.safetensors`` would load weights
    the digest never covers (swappable after registration, like a symbolic link)."""
    import json
    from pathlib import PurePosixPath

    for rel in sorted(f for f in files if f.endswith(".index.json")):
        try:
            data = json.loads((root / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{root / rel}: not a readable weight index ({exc})") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if weight_map is None:
            continue
        if not isinstance(weight_map, dict):
            raise InputError(f"{root / rel}: its weight_map is not a mapping of tensor names to shard files")
        base = PurePosixPath(rel).parent
        for shard in sorted({str(v) for v in weight_map.values()}):
            named = PurePosixPath(shard)
            if named.is_absolute() or ".." in named.parts or "\\" in shard or (base / named).as_posix() not in files:
                raise InputError(f"{root / rel} names the shard {shard!r}, which is not a file of the model "
                                 "directory: its weights would not be covered by the digest; keep every shard inside "
                                 "the directory")


__all__ = ["DIGEST_KINDS", "Manifest", "ModelRef", "check_digest", "check_name", "manifest", "parse_ref"]
