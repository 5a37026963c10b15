"""graduation: a declarative domain-graduation registry and policy engine.

Public surface of the pure core; the CLI (``graduation.cli``) and the training runtime
(``graduation.training``) sit at the edges.
"""

from graduation.errors import GraduationError, InputError, Problem, SpecError
from graduation.spec import DomainSpec, load_domain

__all__ = ["DomainSpec", "GraduationError", "InputError", "Problem", "SpecError", "load_domain"]
__version__ = "0.1.0"
