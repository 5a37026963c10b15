"""Helpers for running the suite against PostgreSQL: each test gets a database of its own."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def fresh_database(base_url: str) -> str:
    """Create an empty database on the server of ``base_url`` and return its URL."""
    url = make_url(base_url)
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
