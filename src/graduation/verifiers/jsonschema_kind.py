"""``json_schema``: the output is JSON that validates against a schema (optionally equal to the reference).

In-process: the output is size-capped and parsed by the standard library (recursion depth is bounded by
Python, and a too-deep document is a ``fail``), and the schema is the domain's own, checked once here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from graduation.errors import VerifierError
from graduation.verifiers.base import BuildContext, Check, Verdict, text_of, verifier


def _load_schema(schema: Any, schema_file: str | None, context: BuildContext) -> dict:
    if (schema is None) == (schema_file is None):
        raise VerifierError("set exactly one of the options schema (inline) or schema_file (a JSON file)")
    if schema_file is not None:
        path = Path(context.root) / schema_file
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VerifierError(f"option schema_file: {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VerifierError(f"option schema_file: {path} is not a readable JSON file: {exc}") from None
    if not isinstance(schema, dict):
        raise VerifierError(f"the schema must be a JSON object, got {type(schema).__name__}")
    return schema


@verifier("json_schema", isolated=False)
def json_schema(*, schema: dict | None = None, schema_file: str | None = None, match_reference: bool = False,
                extract_code_block: bool = True, max_chars: int = 1_000_000,
                context: BuildContext = BuildContext()) -> Check:
    """Pass when the output parses as JSON, validates against the schema, and (with ``match_reference``)
    equals the reference as JSON."""
    import jsonschema

    document = _load_schema(schema, schema_file, context)
    cls = jsonschema.validators.validator_for(document)
    try:
        cls.check_schema(document)
    except jsonschema.SchemaError as exc:
        raise VerifierError(f"invalid JSON Schema: {exc.message}") from None
    validator = cls(document)
    limit = int(max_chars)

    def check(output: Any, reference: Any, row=None) -> Verdict:
        if isinstance(output, (dict, list)):
            value = output
        else:
            text, refused = text_of(output, limit=limit)
            if refused is not None:
                return refused
            text = text.strip()
            if extract_code_block and text.startswith("```"):
                text = text.strip("`")
                text = text[4:] if text.startswith("json") else text
            try:
                value = json.loads(text)
            except RecursionError:
                return Verdict("fail", 0.0, None, "JSON nested too deeply")
            except ValueError as exc:
                return Verdict("fail", 0.0, None, f"not JSON: {exc}")
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except RecursionError:
            return Verdict("fail", 0.0, None, "JSON nested too deeply")
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return Verdict("fail", 0.0, None, f"schema violation at {where}: {error.message[:200]}")
        if match_reference:
            want = reference
            if isinstance(reference, str):
                try:
                    want = json.loads(reference)
                except ValueError:
                    return Verdict.error("the reference is not JSON")
            if value != want:
                return Verdict("fail", 0.0, None, "valid JSON, but not equal to the reference")
        return Verdict("pass", 1.0, None, None)

    return check
