"""``command``: an external program reads ``{"output", "reference", "row"}`` as JSON on stdin.

It answers with JSON on stdout (``{"pass": bool}`` or ``{"score": float}``, optionally ``"explanation"``
and ``"answer"``), or with its exit code alone (0 pass, 1 fail, anything else an error). It is run without a
shell, only in the sandboxed worker pool (``graduation.verifiers.sandbox``), and killed after ``timeout`` seconds.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
from pathlib import Path
from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers import runtime
from graduation.verifiers.base import BuildContext, Check, Verdict, reference_text, verifier


@verifier("command")
def command(*, argv: list[str] | str, timeout: float = 10.0, threshold: float = 1.0,
            context: BuildContext = BuildContext()) -> Check:
    """Run ``argv`` (a list, or a string split like a shell would, never run by one) per output."""
    args = shlex.split(argv) if isinstance(argv, str) else list(argv)
    if not args or not all(isinstance(a, str) and a for a in args):
        raise VerifierError(f"option argv must be a non-empty list of strings, got {argv!r}")
    cwd = Path(context.root)
    limit = float(timeout)
    threshold = float(threshold)

    if not runtime.IN_WORKER:  # domain code runs only in the sandboxed worker pool
        def outside(output: Any, reference: Any, row=None) -> Verdict:
            return Verdict.error(f"{args[0]}: command verifiers run only in the sandboxed worker pool")

        from graduation.identity import code_fingerprint

        # the cache key covers the scripts argv names and what they import, not only argv
        outside.fingerprint = code_fingerprint("command", {"argv": argv}, cwd)  # type: ignore[attr-defined]
        return outside

    def check(output: Any, reference: Any, row=None) -> Verdict:
        payload = json.dumps({"output": output if isinstance(output, str) else reference_text(output),
                              "reference": reference, "row": dict(row) if row else None},
                             ensure_ascii=True, default=str)
        try:
            proc = subprocess.run(args, input=payload.encode(), capture_output=True, timeout=limit, cwd=cwd,
                                  env=_child_env())
        except subprocess.TimeoutExpired:
            return Verdict.error(f"command timed out after {limit:g}s")
        except OSError as exc:
            return Verdict.error(f"cannot run {args[0]!r}: {exc.strerror}")
        out = proc.stdout.decode("utf-8", "replace").strip()
        if out:
            try:
                answer = json.loads(out)
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                return _from_json(answer, threshold)
        if proc.returncode == 0:
            return Verdict("pass", 1.0, None, None)
        if proc.returncode == 1:
            return Verdict("fail", 0.0, None, proc.stderr.decode("utf-8", "replace").strip()[:200] or None)
        return Verdict.error(f"command exited with {proc.returncode}: "
                             f"{proc.stderr.decode('utf-8', 'replace').strip()[:200]}")

    return check


def _child_env() -> dict[str, str]:
    """The worker's environment, but a Python command reads and writes bytecode only in a tree of the worker's
    own temporary directory (written once per worker): a `.pyc` planted in a `__pycache__` of the project, with
    the header of the script's hashed local import, never runs in its place."""
    import os
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "graduation-pycache")
    return env


def _from_json(answer: dict, threshold: float) -> Verdict:
    explanation = answer.get("explanation")
    extracted = answer.get("answer")
    if "score" in answer and isinstance(answer["score"], (int, float)) and not isinstance(answer["score"], bool):
        score = float(answer["score"])
        if not math.isfinite(score):
            return Verdict.error("the command's score is not finite")
        return Verdict.of(score >= threshold, score=score, answer=extracted, explanation=explanation)
    if isinstance(answer.get("pass"), bool):
        return Verdict.of(answer["pass"], answer=extracted, explanation=explanation)
    if answer.get("verdict") in ("pass", "fail", "error"):
        if answer["verdict"] == "error":
            return Verdict.error(str(explanation or "the command reported an error"))
        return Verdict.of(answer["verdict"] == "pass", answer=extracted, explanation=explanation)
    return Verdict.error("the command's JSON has none of 'pass', 'score' or 'verdict'")
