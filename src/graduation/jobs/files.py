"""What every renderer of a job's files shares: the Jinja2 environment (values reaching a shell quoted with
``q``), YAML dumps of plain data (no value pasted into YAML text), names safe for scripts and Kubernetes."""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

_SAFE_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("graduation.jobs", "templates"), undefined=StrictUndefined,
                      autoescape=False, keep_trailing_newline=True, trim_blocks=False)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env


def bare(value: str, what: str) -> str:
    """A value written into a script unquoted: letters, digits, '.', '_' and '-' only."""
    if not _SAFE_WORD.match(value):
        raise ValueError(f"{what} {value!r} cannot be written into a script unquoted")
    return value


def dump_yaml(data: Any, header: str = "") -> str:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body


def k8s_name(job_id: str) -> str:
    """A DNS-1123 label (63 characters at most) for the job."""
    name = re.sub(r"[^a-z0-9-]", "-", job_id.lower()).strip("-")[:63].strip("-")
    return name or "graduation-job"


__all__ = ["bare", "dump_yaml", "environment", "k8s_name"]
