"""Safe YAML loading that remembers where every value came from.

``load_yaml(text, file)`` returns a ``Located`` document: the plain Python data plus a map from
each value's path (a tuple of keys and indexes) to its line and column, so that a schema error found
later by pydantic can be reported as ``file:line:column``.

Only YAML's core types are constructed (the safe schema). Tags such as ``!!python/object`` are
errors, duplicate keys are errors, and anchors/aliases are bounded so that an alias bomb cannot
exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from graduation.errors import Problem, SpecError

Path = tuple[str | int, ...]

MAX_NODES = 100_000
MAX_DEPTH = 200

_SAFE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


@dataclass
class Located:
    """A loaded YAML document and the position of each of its values."""

    data: Any
    file: str
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path) -> tuple[int, int] | None:
        """Line and column (1-based) of ``path``, or of its nearest located ancestor."""
        path = tuple(path)
        while True:
            if path in self.positions:
                return self.positions[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: Path, message: str, hint: str | None = None) -> Problem:
        pos = self.position(path)
        return Problem(
            message=message,
            file=self.file,
            line=pos[0] if pos else None,
            column=pos[1] if pos else None,
            field=format_path(path) or None,
            hint=hint,
        )


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.count = 0
        self.constructor = yaml.SafeLoader.__new__(yaml.SafeLoader)
        yaml.constructor.SafeConstructor.__init__(self.constructor)

    def fail(self, node: Node, message: str, hint: str | None = None, path: Path = ()) -> SpecError:
        mark = node.start_mark
        return SpecError(
            [Problem(message, self.file, mark.line + 1, mark.column + 1, format_path(path) or None, hint)]
        )

    def build(self, node: Node, path: Path, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, f"document expands to more than {MAX_NODES:,} values",
                            "reduce it, or check for an alias bomb (anchors referring to anchors)", path)
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels", "flatten the document", path)
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if node.tag not in _SAFE_TAGS:
            raise self.fail(node, f"the tag {node.tag!r} is not allowed",
                            "only plain YAML values (maps, lists, strings, numbers, booleans) are accepted", path)
        if isinstance(node, MappingNode):
            self.constructor.flatten_mapping(node)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    raise self.fail(key_node, "a mapping key must be a plain scalar", path=path)
                key = self.scalar(key_node, path)
                if not isinstance(key, str):
                    key = str(key)
                if key in result:
                    raise self.fail(key_node, f"duplicate key {key!r}", "each key may appear once", path + (key,))
                self.positions[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                result[key] = self.build(value_node, path + (key,), depth + 1)
            return result
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def scalar(self, node: ScalarNode, path: Path) -> Any:
        try:
            return self.constructor.construct_object(node, deep=False)
        except yaml.YAMLError as exc:
            raise self.fail(node, f"invalid value: {exc}", path=path) from None


def load_yaml(text: str, file: str) -> Located:
    """Parse one YAML document. Raises ``SpecError`` with file:line:column on any problem."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = exc.problem or str(exc)
        if exc.context:
            msg = f"{exc.context}: {msg}" if exc.problem else exc.context
        raise SpecError([Problem(f"YAML syntax error: {msg}", file,
                                 mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                                 hint="fix the YAML syntax at this position")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: located by its offset
        where = max(0, min(int(exc.position), len(text)))
        line = text.count("\n", 0, where) + 1
        column = where - (text.rfind("\n", 0, where) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SpecError([Problem(f"YAML error: the character U+{code:04X} is not allowed in a YAML file", file,
                                 line, column, hint="remove it, or quote the value and escape it")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(f"YAML error: {exc}", file, 1, 1)]) from None
    except RecursionError:
        raise SpecError([Problem(f"nesting deeper than {MAX_DEPTH} levels", file, 1, 1,
                                 hint="flatten the document")]) from None
    if node is None:
        return Located(None, file, {(): (1, 1)})
    builder = _Builder(file)
    data = builder.build(node, ())
    return Located(data, file, builder.positions)
