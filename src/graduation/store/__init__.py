"""The registry store: the only package that talks to the database.

``Database`` opens (and migrates) a database; the modules beside it hold the queries for one kind
of record each: ``domains``, and the evidence, audit and job records added by later layers.
"""

from graduation.store.engine import Database, default_url, resolve_url
from graduation.store.domains import Registration

__all__ = ["Database", "Registration", "default_url", "resolve_url"]
