"""Prompts as the model sees them (pure): a domain's ``task`` template and system prompt over a data row.

    text_or_messages = render_prompt(task, row)

- ``task.template`` (Jinja2, sandboxed, undefined names are errors) renders the row's fields, e.g. a SQL
  schema next to the question: ``"{{ schema }}\\n\\nQuestion: {{ question }}"``. Without a template the
  prompt is the row's ``prompt_field`` as it is.
- ``task.system_prompt`` is prepended (plain text), or becomes the system message when ``task.chat`` is true.
- ``task.chat: true`` makes the prompt conversational, ``[{"role": "system", ...}, {"role": "user", ...}]``,
  as TRL expects for conversational datasets: the trainer applies the tokenizer's chat template, and so does
  evaluation (``graduation.training.runner.prompt_text``), so training, rewards and evaluation see one rendering.

Job data rows keep the raw prompt in ``source_prompt``: evidence is matched to ground truth by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

Prompt = str | list[dict[str, str]]


@lru_cache(maxsize=64)
def compile_template(source: str):
    """A sandboxed Jinja2 template (no attribute access to Python internals, undefined names raise)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)
    return env.from_string(source)


def template_problem(source: str) -> str | None:
    """Why ``source`` is not a valid template (with its line), or None."""
    from jinja2 import TemplateSyntaxError

    try:
        compile_template(source)
    except TemplateSyntaxError as exc:
        return f"template line {exc.lineno}: {exc.message}"
    return None


def render_prompt(task: Any, row: Mapping[str, Any]) -> Prompt:
    """The prompt for ``row``: text, or chat messages when ``task.chat``. Raises ValueError naming a missing field."""
    from jinja2 import TemplateError, UndefinedError

    template = getattr(task, "template", None)
    if template:
        try:
            user = compile_template(template).render(**{str(k): v for k, v in row.items()})
        except UndefinedError as exc:
            raise ValueError(f"task.template: {exc.message}; fields of the row: {sorted(row)[:12]}") from None
        except TemplateError as exc:
            raise ValueError(f"task.template: {exc}") from None
    else:
        user = str(row[task.prompt_field])
    system = getattr(task, "system_prompt", None)
    if getattr(task, "chat", False):
        messages = [{"role": "system", "content": system}] if system else []
        return messages + [{"role": "user", "content": user}]
    return f"{system}\n\n{user}" if system else user


def is_plain(task: Any) -> bool:
    """True when prompts are the raw prompt field (no template, no system prompt, not chat)."""
    return not (getattr(task, "template", None) or getattr(task, "system_prompt", None) or getattr(task, "chat", False))


__all__ = ["Prompt", "compile_template", "is_plain", "render_prompt", "template_problem"]
