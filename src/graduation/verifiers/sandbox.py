"""The sandbox for domain code: python and command verifiers run only in worker processes started here.

A domain's own code (``python`` verifiers are imported, ``command`` verifiers executed) never runs in the
process that holds the registry. Each worker is a fresh interpreter (``python -m
graduation.verifiers.worker FD ...``) that talks to the parent over one inherited socket and starts:

* under bubblewrap (``bwrap``): every namespace unshared (no network, its own PIDs, IPC and hostname),
  the whole file system read-only (the project included), the registry directory (database, keys,
  caches, jobs) and the user's home hidden behind empty tmpfs mounts, a private ``/tmp``;
* with a scrubbed environment: only ``PATH``, ``LANG``, ``PYTHONPATH`` (where graduation itself is),
  a private ``HOME`` and ``TMPDIR``; no ``REGISTRY_DB_URL``, no tokens or credentials of any kind;
* with resource limits: address space (the pool's ``memory_mb``), file size, open files, no core dumps.

Where bubblewrap is missing or cannot create namespaces, ``require()`` stops the run with a message
saying so, unless the caller chose ``mode="unsandboxed"`` (``--unsandboxed``): then the worker still
gets the scrubbed environment, private HOME/TMPDIR and limits, without the namespaces, and the evidence
records ``sandbox: unsandboxed``. Only the parent writes the verdict cache and the database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from graduation.errors import InputError, SandboxUnavailable

DOMAIN_CODE_KINDS = frozenset({"python", "command"})
MODES = ("bwrap", "unsandboxed")
FILE_SIZE_LIMIT = 64 << 20
OPEN_FILES_LIMIT = 256


@lru_cache(maxsize=1)
def probe() -> str | None:
    """``None`` when bubblewrap can start a sandbox here, else why it cannot."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bubblewrap (bwrap) is not installed"
    try:
        proc = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                              capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc}"
    if proc.returncode != 0:
        return f"bwrap cannot create namespaces here: {proc.stderr.decode('utf-8', 'replace').strip()[:200]}"
    return None


def require(mode: str) -> str:
    """The mode domain code will run in; raises ``SandboxUnavailable`` when the sandbox is needed and missing."""
    if mode not in MODES:
        raise InputError(f"sandbox mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "bwrap":
        problem = probe()
        if problem is not None:
            raise SandboxUnavailable(
                f"python and command verifiers run only in a sandbox, and {problem}. Install the Debian "
                "package bubblewrap (`apt-get install bubblewrap`), or pass --unsandboxed to run the domain's "
                "code with a scrubbed environment but no namespaces (the evidence records it)")
    return mode


def _graduation_path() -> str:
    import graduation  # lazy: only its path, for the worker

    return str(Path(graduation.__file__).resolve().parent.parent)


def _limits(memory_mb: int):
    def apply() -> None:
        import resource

        os.setsid()
        for limit, value in ((resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT), (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT),
                             (resource.RLIMIT_CORE, 0)):
            try:
                resource.setrlimit(limit, (value, value))
            except (ValueError, OSError):
                pass

    return apply


class SandboxProcess:
    """A worker started by ``start``; the subset of ``multiprocessing.Process`` the pool uses."""

    def __init__(self, popen: subprocess.Popen, home: str | None) -> None:
        self.popen = popen
        self.home = home

    def kill(self) -> None:
        try:
            self.popen.kill()
        except OSError:
            pass

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)
            self.home = None

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()


def start(mode: str, root: str | Path, soft_timeout: float, memory_mb: int):
    """Start one sandboxed worker; returns (process, connection)."""
    import socket
    from multiprocessing.connection import Connection

    parent_sock, child_sock = socket.socketpair()
    fd = child_sock.fileno()
    path = [_graduation_path()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # a python verifier's modules are compiled from their source (``python_kind``), and a command's Python
    # reads and writes bytecode in a private tree (``command``): never a `.pyc` planted in the project
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": os.pathsep.join(path),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    # -P: `-m` does not put the working directory (the project) first on the worker's own path, so a
    # `graduation/` or stdlib-named module planted in the project never replaces the worker's code (a python
    # verifier puts the project on the path itself; a command's scripts keep their own directory first)
    argv = [sys.executable, "-P", "-m", "graduation.verifiers.worker", str(fd), repr(soft_timeout), str(memory_mb)]
    home = None
    root = Path(root).resolve()
    if mode == "bwrap":
        exe = shutil.which("bwrap") or "bwrap"
        env.update(HOME="/tmp/home", TMPDIR="/tmp")
        cmd = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        needed = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
                  Path(sys.executable).resolve().parent, Path(_graduation_path()), root]
        for path_ in needed:  # what lives under /tmp is bound back in, read-only
            if path_.is_relative_to("/tmp") and path_.exists():
                cmd += ["--ro-bind", str(path_), str(path_)]
        cmd += ["--dir", "/tmp/home", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
        hidden = [root / "registry"]
        real_home = Path(os.path.expanduser("~")).resolve()
        if real_home != Path("/") and not any(p == real_home or p.is_relative_to(real_home) for p in needed):
            hidden.append(real_home)
        for path_ in hidden:
            if path_.is_dir():
                cmd += ["--tmpfs", str(path_)]
        # a job bundle's copy of the domain (``registry/jobs/JOB/project``) lies inside its project's registry
        # directory: hide that whole directory too, and bind the bundle's copy back in, read-only
        enclosing = [p / "registry" for p in root.parents if root.is_relative_to(p / "registry")]
        for path_ in enclosing[-1:]:
            cmd += ["--tmpfs", str(path_), "--ro-bind", str(root), str(root)]
        for key, value in env.items():
            cmd += ["--setenv", key, value]
        cmd += ["--chdir", str(root), *argv]
        popen = subprocess.Popen(cmd, pass_fds=(fd,), env=env, cwd=root, stdin=subprocess.DEVNULL,
                                 preexec_fn=_limits(memory_mb))
    else:
        home = tempfile.mkdtemp(prefix="graduation-worker-")
        env.update(HOME=home, TMPDIR=home)
        popen = subprocess.Popen(argv, pass_fds=(fd,), env=env, cwd=root, stdin=subprocess.DEVNULL,
                                 preexec_fn=_limits(memory_mb))
    child_sock.close()
    return SandboxProcess(popen, home), Connection(parent_sock.detach())
