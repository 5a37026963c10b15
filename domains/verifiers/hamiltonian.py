"""Substance verifier of the ``hamiltonian-mechanics`` domain: Hamilton's equations, compared symbolically.

Declared in ``domains/hamiltonian-mechanics.yaml`` as::

    kind: python
    options: {function: "domains.verifiers.hamiltonian:equations_match"}

An answer is a list of equations ``d<variable>/dt = <expression>``, one per coordinate and momentum, e.g.
``dq/dt = p/2, dp/dt = -3*q``. The output passes when it states an equation for exactly the variables of the
reference and every right-hand side equals the reference's, as mathematics (``0.5*p`` equals ``p/2``).

Model output is untrusted text. It is never handed to ``eval``, ``sympify`` or ``parse_expr``: a small
recursive-descent parser reads it token by token against a whitelist (numbers, plain identifiers,
``+ - * / ^ **``, parentheses and a few named functions) and builds the sympy expression itself. Exponents
must be small rational constants and nesting is bounded, so no output can ask sympy for a huge power. A
symbol that occurs neither in the reference nor in the row's Hamiltonian (an invented parameter such as
``golden_hour_sun``) fails the answer by name. Equality is exact: a numeric test at fixed pseudo-random
points rejects wrong answers quickly, and agreement there is confirmed symbolically.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

import sympy

MAX_CHARS = 4000
MAX_DEPTH = 40
MAX_NUMBER_DIGITS = 15
MAX_EXPONENT = 12
MAX_IDENTIFIER = 40
MAX_DEGREE = 24
MAX_RESULT_DIGITS = 400
FUNCTIONS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "exp": sympy.exp, "log": sympy.log,
             "sqrt": sympy.sqrt, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh}
CONSTANTS = {"pi": sympy.pi}

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<name>[A-Za-z][A-Za-z0-9_]*)|(?P<op>\*\*|[-+*/^()]))")
_LHS = re.compile(r"d([A-Za-z][A-Za-z0-9_]*)\s*/\s*dt\s*=")


class ParseError(ValueError):
    """The text is not an expression this parser accepts."""


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ParseError(f"unexpected character {text[pos:pos + 1]!r} at position {pos}")
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "num" and len(value.replace(".", "")) > MAX_NUMBER_DIGITS:
            raise ParseError(f"number too long: {value[:20]}...")
        if kind == "name" and len(value) > MAX_IDENTIFIER:
            raise ParseError(f"identifier too long: {value[:20]}...")
        tokens.append((kind, value))
        pos = match.end()
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := ('+'|'-') unary | power ; power := atom (('**'|'^') unary)? ;
    atom := number | name | function '(' expr ')' | '(' expr ')'"""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ParseError("unexpected end of expression")
        if value is not None and token[1] != value:
            raise ParseError(f"expected {value!r}, found {token[1]!r}")
        self.pos += 1
        return token

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("expression nested too deeply")

    def parse(self) -> sympy.Expr:
        if not self.tokens:
            raise ParseError("empty expression")
        result = self.expr()
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return result

    def expr(self) -> sympy.Expr:
        self.enter()
        result = self.term()
        while (token := self.peek()) is not None and token[1] in ("+", "-"):
            self.take()
            right = self.term()
            result = result + right if token[1] == "+" else result - right
        self.depth -= 1
        return result

    def term(self) -> sympy.Expr:
        result = self.unary()
        while (token := self.peek()) is not None and token[1] in ("*", "/"):
            self.take()
            right = self.unary()
            if token[1] == "*":
                result = result * right
            else:
                if right == 0:
                    raise ParseError("division by zero")
                result = result / right
        return result

    def unary(self) -> sympy.Expr:
        token = self.peek()
        if token is not None and token[1] in ("+", "-"):
            self.enter()
            self.take()
            operand = self.unary()
            self.depth -= 1
            return operand if token[1] == "+" else -operand
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        token = self.peek()
        if token is not None and token[1] in ("**", "^"):
            self.take()
            self.enter()
            exponent = self.unary()
            self.depth -= 1
            if not (exponent.is_Rational and abs(exponent.p) <= MAX_EXPONENT and exponent.q <= MAX_EXPONENT):
                raise ParseError(f"exponents must be small rational constants, got {str(exponent)[:40]}")
            if base == 0 and exponent < 0:
                raise ParseError("division by zero")
            digits = max(len(str(abs(base.p))), len(str(base.q))) if base.is_Rational else 0
            if digits * abs(exponent) > MAX_RESULT_DIGITS:
                raise ParseError("number too large")
            return base ** exponent
        return base

    def atom(self) -> sympy.Expr:
        kind, value = self.take()
        if kind == "num":
            return sympy.Rational(value)
        if kind == "name":
            if value in FUNCTIONS:
                self.take("(")
                self.enter()
                argument = self.expr()
                self.depth -= 1
                self.take(")")
                return FUNCTIONS[value](argument)
            if value in CONSTANTS:
                return CONSTANTS[value]
            return sympy.Symbol(value)
        if value == "(":
            self.enter()
            inner = self.expr()
            self.depth -= 1
            self.take(")")
            return inner
        raise ParseError(f"unexpected {value!r}")


def parse_expression(text: str) -> sympy.Expr:
    """A sympy expression from whitelisted text; raises ``ParseError`` for anything else."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ParseError(f"expression longer than {MAX_CHARS} characters")
    result = _Parser(tokenize(text)).parse()
    for node in sympy.preorder_traversal(result):
        if node.is_Pow and node.exp.is_Rational and abs(node.exp) > MAX_DEGREE:
            raise ParseError(f"power of degree {node.exp} is beyond what a Hamiltonian answer needs")
        if node.is_Rational and max(len(str(abs(node.p))), len(str(node.q))) > MAX_RESULT_DIGITS:
            raise ParseError("number too large")
    return result


def parse_equations(text: str) -> dict[str, sympy.Expr]:
    """``{"q": dq/dt, "p": dp/dt, ...}`` from ``dq/dt = ..., dp/dt = ...`` (prose before the first equation
    is ignored; separators between equations may be commas, semicolons or newlines)."""
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ParseError(f"answer longer than {MAX_CHARS} characters")
    text = text.replace("$", " ")
    heads = list(_LHS.finditer(text))
    if not heads:
        raise ParseError("no equation of the form d<variable>/dt = <expression>")
    equations: dict[str, sympy.Expr] = {}
    for i, head in enumerate(heads):
        stop = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[head.end():stop].strip().rstrip(".").strip().rstrip(",;").strip()
        variable = head.group(1)
        if variable in equations:
            raise ParseError(f"d{variable}/dt is given twice")
        try:
            equations[variable] = parse_expression(body)
        except ParseError as exc:
            raise ParseError(f"d{variable}/dt: {exc}") from None
    return equations


def _points(symbols: list[sympy.Symbol], count: int, seed: int = 20261125) -> list[dict]:
    rng = random.Random(seed)
    return [{s: sympy.Rational(rng.randint(55, 245), 100) for s in symbols} for _ in range(count)]


def expressions_equal(got: sympy.Expr, want: sympy.Expr) -> bool:
    """Exact equality, decided cheaply where possible.

    A numeric test at fixed pseudo-random points rejects almost every wrong answer at once (a nonzero
    difference of analytic expressions vanishes at random points with probability zero). An answer that
    agrees at every point is then confirmed symbolically (``expand``, else ``simplify`` for identities such
    as sin(q)**2 + cos(q)**2 = 1), so that a perturbation below floating-point resolution cannot pass.
    """
    difference = got - want
    if difference == 0:
        return True
    symbols = sorted(got.free_symbols | want.free_symbols, key=lambda s: s.name)
    for point in _points(symbols, 12):
        value = complex(difference.evalf(30, subs=point))
        if value != value or abs(value) == float("inf"):  # nan or a pole: try another point
            continue
        scale = max(1.0, abs(complex(want.evalf(30, subs=point))))
        if abs(value) > 1e-12 * scale:
            return False
    expanded = sympy.expand(difference)
    return expanded == 0 or sympy.simplify(expanded) == 0


def _known_symbols(reference_equations: dict[str, sympy.Expr], row: Mapping[str, Any] | None) -> set[str]:
    names = {s.name for expr in reference_equations.values() for s in expr.free_symbols}
    names |= set(reference_equations)
    if row and isinstance(row.get("hamiltonian"), str):
        try:
            names |= {s.name for s in parse_expression(row["hamiltonian"]).free_symbols}
        except ParseError:
            pass
    return names


def _short(expr: sympy.Expr, limit: int = 80) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check(output: Any, reference: Any, row: Mapping[str, Any] | None = None) -> tuple[bool, str | None]:
    """``(passed, why not)``: the pure comparison, usable without the graduation package."""
    want = parse_equations(str(reference))
    try:
        got = parse_equations(output if isinstance(output, str) else str(output))
    except ParseError as exc:
        return False, f"unreadable answer: {exc}"
    missing = [f"d{v}/dt" for v in want if v not in got]
    extra = [f"d{v}/dt" for v in got if v not in want]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(extra)}"] if extra else [])
        return False, "; ".join(parts)
    known = _known_symbols(want, row)
    for variable, expr in got.items():
        unknown = sorted(s.name for s in expr.free_symbols if s.name not in known)
        if unknown:
            return False, f"d{variable}/dt uses symbol(s) not in the system: {', '.join(unknown)}"
    for variable, expr in want.items():
        if not expressions_equal(got[variable], expr):
            return False, f"d{variable}/dt = {_short(got[variable])} is not {_short(expr)}"
    return True, None


def equations_match(output: Any, reference: Any, row: Mapping[str, Any] | None = None):
    """The ``python`` verifier entry point: a ``Verdict`` naming what is wrong."""
    from graduation.verifiers.base import Verdict

    ok, why = check(output, reference, row)
    return Verdict.of(ok, explanation=why)
