"""Registering models in tests: rounds belong to a registered model version."""

from __future__ import annotations

import hashlib


def registered(db, name: str = "m", content: str | None = None) -> str:
    """Register ``name`` by an external digest (of ``content``, default the name); returns its NAME@V."""
    from graduation.store.models import register_model

    digest = "sha256:" + hashlib.sha256((content or name).encode()).hexdigest()
    with db.write() as session:
        info, _created = register_model(session, name, digest=digest, kind="external")
    return info.ref
