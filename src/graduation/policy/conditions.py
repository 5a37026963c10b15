"""CEL conditions of a policy, checked before they run: names resolved statically against the fact schema
(with a did-you-mean), the facts each condition uses collected, and a type check on example facts.

    errors, uses = check_condition("eval.wilson_lower >= thresholds.min_wilson_lower")
    program = compile_cel(source)        # the one place policy code compiles CEL; never Python's eval
    problem = type_check(program)        # None when it yields a bool on example facts of every type

Each condition is compiled and evaluated on its own (``policy.engine``): a comment or string in one rule
cannot reach another.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from graduation.cel_loader import load_cel
from graduation.policy.fact_schema import FACT_SCHEMA, SYMBOL, example_facts

CEL_NAMES = {"true", "false", "null", "int", "uint", "double", "string", "bytes", "bool", "list", "map", "type",
             "dyn", "null_type", "in"}
MACROS = ("all", "exists", "exists_one", "map", "filter")
# -- CEL static checks ------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<string>[rRbB]{0,2}(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<comment>//[^\n]*)
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>\.|\(|\)|,|\[|\]|\{|\}|[^\sA-Za-z0-9_.(),\[\]{}])
  | (?P<space>\s+)
""", re.VERBOSE)


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        if kind != "space" and kind != "comment":
            out.append((kind, m.group()))
    return out


def member_chains(source: str) -> tuple[list[list[str]], dict[str, list[str] | None]]:
    """Member-access chains (``eval.wilson_lower``) and macro-bound variables (``s`` -> receiver chain)."""
    toks = _tokens(source)
    chains: list[list[str]] = []
    bound: dict[str, list[str] | None] = {}
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        prev = toks[i - 1][1] if i else ""
        if kind == "ident" and prev == "." and text in MACROS and i + 3 < len(toks) and toks[i + 1][1] == "(" \
                and toks[i + 2][0] == "ident" and toks[i + 3][1] == ",":
            bound.setdefault(toks[i + 2][1], None)  # a macro over a computed list: its variable is not checked
        if kind != "ident" or prev == ".":
            i += 1
            continue
        chain = [text]
        j = i + 1
        while j + 1 < len(toks) and toks[j][1] == "." and toks[j + 1][0] == "ident":
            chain.append(toks[j + 1][1])
            j += 2
        # a name followed by '(' is a call: the chain before it is its receiver (or nothing)
        if j < len(toks) and toks[j][1] == "(":
            call = chain.pop()
            if call in MACROS and chain and j + 2 < len(toks) and toks[j + 1][0] == "ident" and toks[j + 2][1] == ",":
                bound[toks[j + 1][1]] = chain
        if chain:
            chains.append(chain)
        i = j
    return chains, bound


def _describe(node: Any) -> str:
    return node[0] if isinstance(node, tuple) else "map"


def check_chain(chain: list[str], bound: dict[str, list[str] | None]) -> tuple[str | None, list[str] | None]:
    """(error, resolved path from a fact root) for one chain."""
    root = chain[0]
    if root in FACT_SCHEMA:
        node: Any = FACT_SCHEMA[root]
        path = [root]
    elif root in bound and bound[root] is None:
        return None, None  # ranges over a computed list; the type check on example facts covers it
    elif root in bound:
        error, recv = check_chain(bound[root], {k: v for k, v in bound.items() if k != root})
        if error:
            return error, None
        node = _node(recv)
        kind = _describe(node)
        if kind == "list<symbol>":
            node = SYMBOL
        elif kind.startswith("list<"):
            node = (kind[5:-1], "")
        else:
            return f"{'.'.join(bound[root])} is a {kind}, not a list, so {root!r} cannot range over it", None
        path = None
    elif root in CEL_NAMES:
        return None, None
    else:
        close = difflib.get_close_matches(root, list(FACT_SCHEMA), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; facts are {', '.join(FACT_SCHEMA)}"
        return f"unknown name {root!r}{hint}", None
    for i, name in enumerate(chain[1:], start=1):
        if not isinstance(node, dict):
            return f"{'.'.join(chain[:i])} is a {_describe(node)} and has no field {name!r}", None
        if name not in node:
            close = difflib.get_close_matches(name, list(node), n=1)
            hint = f"; did you mean {'.'.join(chain[:i] + [close[0]])!r}?" if close else \
                f"; known: {', '.join(node)}"
            return f"unknown fact {'.'.join(chain[:i + 1])!r}{hint}", None
        node = node[name]
    return None, path if path is None else chain


def _node(path: list[str] | None) -> Any:
    node: Any = FACT_SCHEMA
    for name in path or []:
        node = node[name] if isinstance(node, dict) else node
    return node


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*(?:\|[a-z]+)?)\}")
FORMATS = ("percent",)


def check_condition(source: str) -> tuple[list[str], dict[str, set[str] | None]]:
    """Static check of a CEL condition's names: (errors, facts used: root -> keys or None for all)."""
    errors: list[str] = []
    uses: dict[str, set[str] | None] = {}
    chains, bound = member_chains(source)
    for chain in chains:
        error, path = check_chain(chain, bound)
        if error:
            errors.append(error)
            continue
        if path:
            _use(uses, path)
    for recv in bound.values():
        if recv and recv[0] in FACT_SCHEMA:
            _use(uses, recv)
    return errors, uses


def _use(uses: dict[str, set[str] | None], path: list[str]) -> None:
    root = path[0]
    if len(path) == 1 or not isinstance(FACT_SCHEMA[root], dict):
        uses[root] = None
    elif root not in uses:
        uses[root] = {path[1]}
    elif uses[root] is not None:
        uses[root].add(path[1])


def compile_cel(source: str):
    """Compile a CEL expression (the one place policy code uses the CEL package)."""

    return load_cel().compile(source)


def type_check(program: Any) -> str | None:
    """Run a compiled condition on example facts of every declared type; None if it yields bools."""
    for variant in (0, 1):
        try:
            result = program.execute(example_facts(variant))
        except (ZeroDivisionError, OverflowError, ArithmeticError):
            continue  # a runtime value problem, not a type error: it denies when it happens
        except Exception as exc:  # noqa: BLE001 - the CEL package raises several types; all mean "type error"
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        if not isinstance(result, bool):
            return f"yields {type(result).__name__} {result!r}, not a bool"
    return None


__all__ = ["FORMATS", "PLACEHOLDER", "check_chain", "check_condition", "compile_cel", "member_chains", "type_check"]
