"""The verifier kinds as documentation: each option's type, default and description, and an example.

    describe("regex")        # -> KindDoc(name, summary, isolated, options=[OptionDoc...], example)
    kinds_schema()           # -> a JSON Schema ``oneOf`` over kinds, each with its ``options`` schema

The options come from each kind's factory signature (the same binding ``build`` uses), so the catalogue
cannot drift from the code; the descriptions of the built-in kinds' options are written here. Kinds added
by plugins are listed with their signature and an empty description.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any
from graduation.spec import json_schema
from graduation.verifiers.base import get_kind, kinds

OPTION_DOCS: dict[str, dict[str, str]] = {
    "exact": {
        "case_sensitive": "Compare letters with their case.",
        "strip": "Ignore leading and trailing whitespace.",
        "collapse_whitespace": "Treat runs of whitespace as one space.",
        "strip_punctuation": "Ignore punctuation.",
        "unicode_nfkc": "Normalise Unicode (NFKC) before comparing.",
        "extract": "An re2 pattern; its last match (first group, else the whole match) is the answer.",
        "max_chars": "Longer outputs fail unread.",
    },
    "regex": {
        "pattern": "An re2 pattern (linear time: no look-around, no backreferences); {reference} stands for "
                   "the escaped reference.",
        "full_match": "The pattern must match the whole output, not a part.",
        "case_sensitive": "Match letters with their case.",
        "strip": "Strip the output before matching.",
        "max_chars": "Longer outputs fail unread.",
    },
    "numeric": {
        "abs_tol": "Absolute tolerance.",
        "rel_tol": "Relative tolerance (of the reference).",
        "extract": "An re2 pattern; its last match holds the number when the output is not a plain number.",
        "last_number_fallback": "When nothing else finds a number, use the last number written; turn off "
                                "when the whole output must be the number (otherwise '3 + q' passes for 3).",
        "max_chars": "Longer outputs fail unread.",
    },
    "math": {
        "float_rounding": "Decimal places numbers are rounded to before comparing.",
        "numeric_precision": "Significant digits of numeric evaluation.",
        "strict": "Strict comparison (math-verify's strict mode).",
        "allow_set_relation_comp": "Allow comparing sets with relations.",
        "max_chars": "Longer outputs fail unread.",
    },
    "json_schema": {
        "schema": "A JSON Schema the output must validate against (inline).",
        "schema_file": "A JSON Schema file, relative to the project.",
        "match_reference": "The output must also equal the reference as JSON.",
        "extract_code_block": "Read the JSON from a ```json code block when there is one.",
        "max_chars": "Longer outputs fail unread.",
    },
    "python": {
        "function": "'package.module:function', importable from the project root; called as "
                    "function(output, reference, row) -> bool | float | Verdict.",
        "threshold": "A float result passes at this score or above.",
    },
    "command": {
        "argv": "The command (a list, or a string split like a shell would; never run by a shell). It reads "
                "{output, reference, row} as JSON on stdin.",
        "timeout": "Seconds before the command is killed (an error verdict).",
        "threshold": "A printed score passes at this value or above.",
    },
    "reasoning_gym": {
        "dataset": "The reasoning-gym task (default: the row's metadata names it).",
        "threshold": "Scores at or above this pass (reasoning-gym gives partial credit).",
        "config": "Options of the task's config.",
        "question_field": "The ground truth field that holds the task's question.",
        "metadata_field": "The ground truth field that holds the task's metadata.",
        "max_chars": "Longer outputs fail unread.",
    },
}

EXAMPLES: dict[str, str] = {
    "exact": "{name: answer, kind: exact, role: substance, options: {extract: 'Answer: (.*)$'}}",
    "regex": "{name: shape, kind: regex, role: format, options: {pattern: '^-?[0-9]+$', full_match: true}}",
    "numeric": "{name: value, kind: numeric, role: substance, options: {abs_tol: 0.01, "
               "last_number_fallback: false}}",
    "math": "{name: equations, kind: math, role: substance, controls: data/known_wrong.jsonl}",
    "json_schema": "{name: valid-json, kind: json_schema, role: format, options: {schema_file: schema.json}}",
    "python": "{name: runs, kind: python, role: substance, options: {function: 'checks.sql:same_rows'}}",
    "command": "{name: compiles, kind: command, role: substance, options: {argv: [./check.sh], timeout: 5}}",
    "reasoning_gym": "{name: score, kind: reasoning_gym, role: substance, options: {dataset: basic_arithmetic}}",
}

REFERENCE_FREE = {"regex", "json_schema"}  # may judge an output without a reference (format checks)


@dataclass(frozen=True)
class OptionDoc:
    name: str
    type: str
    default: Any
    required: bool
    description: str

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(_json_type(self.type))
        if self.description:
            out["description"] = self.description
        if not self.required:
            out["default"] = self.default
        return out


@dataclass(frozen=True)
class KindDoc:
    name: str
    summary: str
    isolated: bool
    options: list[OptionDoc] = field(default_factory=list)
    example: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.name, "summary": self.summary, "isolated": self.isolated,
                "reference_free": self.name in REFERENCE_FREE, "example": self.example,
                "options": [{"name": o.name, "type": o.type, "required": o.required,
                             "default": None if o.required else o.default, "description": o.description}
                            for o in self.options]}

    def options_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False,
                "properties": {o.name: o.schema() for o in self.options},
                "required": [o.name for o in self.options if o.required]}


def describe(name: str) -> KindDoc:
    kind = get_kind(name)
    factory = kind.factory
    try:
        hints = typing.get_type_hints(factory)
    except Exception:
        hints = {}
    docs = OPTION_DOCS.get(name, {})
    options = []
    for p in inspect.signature(factory).parameters.values():
        if p.name == "context" or p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        options.append(OptionDoc(p.name, _type_name(hints.get(p.name, p.annotation)),
                                 None if required else p.default, required, docs.get(p.name, "")))
    summary = (inspect.getdoc(factory) or "").split("\n\n")[0].replace("\n", " ")
    return KindDoc(name, summary, kind.isolated, options, EXAMPLES.get(name, ""))


def catalog() -> list[KindDoc]:
    return [describe(name) for name in kinds()]


def kinds_schema() -> dict[str, Any]:
    """``oneOf`` over kinds: each branch fixes ``kind`` and gives its ``options`` schema; a last branch lets
    kinds of plugins through (their options are checked when the verifier is built)."""
    docs = catalog()
    branches: list[dict[str, Any]] = [
        {"title": d.name, "description": d.summary,
         "properties": {"kind": {"const": d.name}, "options": d.options_schema()},
         **({"required": ["options"]} if any(o.required for o in d.options) else {})}
        for d in docs]
    branches.append({"title": "plugin kind", "properties": {"kind": {"not": {"enum": [d.name for d in docs]}}}})
    return {"oneOf": branches}


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, str):
        return annotation
    text = getattr(annotation, "__name__", None) if not typing.get_args(annotation) else None
    return text or str(annotation).replace("typing.", "")


def _json_type(name: str) -> dict[str, Any]:
    simple = {"bool": "boolean", "int": "integer", "float": "number", "str": "string", "dict": "object",
              "list[str]": "array"}
    parts = [p.strip() for p in name.split("|")]
    types = []
    for part in parts:
        if part == "None" or part == "NoneType":
            types.append("null")
        elif part in simple:
            types.append(simple[part])
    if not types:
        return {}
    if "number" in types and "integer" not in types:
        types.append("integer")
    return {"type": types[0] if len(types) == 1 else types}


__all__ = ["KindDoc", "OptionDoc", "catalog", "describe", "kinds_schema"]


def domain_schema() -> dict[str, Any]:
    """The JSON Schema of domain files (``spec.json_schema``) with each verifier's options by kind."""

    schema = json_schema()
    verifier = schema.get("$defs", {}).get("VerifierSpec")
    if verifier is not None:
        verifier.update(kinds_schema())
    return schema
