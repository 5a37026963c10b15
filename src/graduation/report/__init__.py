"""The static HTML report of the registry: ``write_report(db, project_root)`` (see ``build``)."""
