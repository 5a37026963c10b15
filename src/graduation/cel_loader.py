"""Loading the CEL extension (the ``common-expression-language`` package) once per process.

The package's ``__init__`` also imports its interactive shell (prompt_toolkit, pygments), which would
cost `registry status` a noticeable share of its start-up, so the compiled core is loaded on its own
when it can be found. Loading the extension twice (once on its own, once through ``import cel``)
initialises it twice, which panics in its logger set-up: the core is registered in ``sys.modules``
and every user goes through ``load_cel()``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_CEL: Any = None


def load_cel() -> Any:
    """The CEL module, with ``compile``; loaded on first use."""
    global _CEL
    if _CEL is not None:
        return _CEL
    for name in ("cel", "cel.cel"):
        loaded = sys.modules.get(name)
        if loaded is not None and hasattr(loaded, "compile"):
            _CEL = loaded
            return _CEL
    try:
        import importlib.machinery
        import importlib.util

        found = importlib.util.find_spec("cel")
        for location in (found.submodule_search_locations or []) if found else []:
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                path = Path(location) / f"cel{suffix}"
                if path.is_file():
                    loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(path))
                    spec = importlib.util.spec_from_file_location("cel.cel", path, loader=loader)
                    module = importlib.util.module_from_spec(spec)
                    loader.exec_module(module)
                    sys.modules["cel.cel"] = module  # a later `import cel` reuses it
                    _CEL = module
                    return _CEL
    except (ImportError, OSError, AttributeError):
        pass
    import cel

    _CEL = cel
    return _CEL
