"""Shell completion: domain names, actions, model names and job ids, read from the default registry.

Each function takes what the user typed so far and returns the matching values. A completion must never
print a traceback into the shell, create a database, or be slow: the registry is opened read-only
(``create=False``) and any failure returns ``[]``.
"""

from __future__ import annotations

from typing import Any, Callable


def _query(run: Callable[[Any], list[str]]) -> list[str]:
    try:
        import os

        from graduation.service.root import find_project_root
        from graduation.store import Database, resolve_url

        db = Database(resolve_url(os.environ.get("REGISTRY_DB_URL"), find_project_root()), create=False)
        try:
            with db.read() as session:
                return run(session)
        finally:
            db.dispose()
    except Exception:  # completion must never print a traceback into the shell
        return []


def _starting(values: list[str], incomplete: str) -> list[str]:
    return sorted(v for v in dict.fromkeys(values) if v.startswith(incomplete or ""))


def domain_names(incomplete: str = "") -> list[str]:
    def run(session):
        from graduation.store.domains import list_domains

        return [r.name for r in list_domains(session)]

    return _starting(_query(run), incomplete)


def action_names(incomplete: str = "") -> list[str]:
    from graduation.policy.model import ACTIONS

    return _starting(list(ACTIONS), incomplete)


def job_ids(incomplete: str = "") -> list[str]:
    def run(session):
        from graduation.store.jobs import list_jobs

        return [r.id for r in list_jobs(session)]

    return _starting(_query(run), incomplete)


def model_names(incomplete: str = "") -> list[str]:
    """Registered model names, from a ``models`` table when the registry has one; ``[]`` when it has none."""

    def run(session):
        from sqlalchemy import inspect, text

        bind = session.get_bind()
        if "models" not in inspect(bind).get_table_names():
            return []
        columns = {c["name"] for c in inspect(bind).get_columns("models")}
        name = "name" if "name" in columns else None
        if name is None:
            return []
        return [str(r[0]) for r in session.execute(text(f"SELECT DISTINCT {name} FROM models")).all()]

    return _starting(_query(run), incomplete)


__all__ = ["action_names", "domain_names", "job_ids", "model_names"]
