"""Sampling a registered artifact on a domain's held-out prompts (`registry evaluate --generate`).

    rows = sample(model_dir, prompts_rows, prompt_field=..., answer_field=..., id_field=..., engine="transformers")

Before anything is loaded, the directory is hashed again and must match the registered digest: the
outputs are then made by the registry from that digest (``origin: generated``), not supplied by a user.
``engine="vllm"`` uses vLLM when it is installed (one GPU); ``transformers`` runs anywhere (CPU included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graduation.errors import InputError
from graduation.models import manifest


def check_artifact(path: Path, digest: str) -> None:
    """The directory still holds the registered artifact (its manifest digest equals ``digest``)."""

    found = manifest(path).digest
    if found != digest:
        raise InputError(f"{path}: its files hash to {found}, not the registered {digest}: the artifact changed "
                         "since it was registered; register it again (a new version) and evaluate that")


def sample(model_dir: Path, rows: Sequence[Mapping[str, Any]], *, prompt_field: str, answer_field: str,
           id_field: str | None, samples: int = 0, temperature: float = 0.0, max_new_tokens: int = 64,
           seed: int = 0, engine: str = "transformers") -> list[dict[str, Any]]:
    """Outputs of the model in ``model_dir`` for each row's prompt (``samples`` > 1: k per prompt)."""
    if engine == "vllm":
        return _sample_vllm(model_dir, rows, prompt_field=prompt_field, answer_field=answer_field,
                            id_field=id_field, samples=samples, temperature=temperature,
                            max_new_tokens=max_new_tokens, seed=seed)
    if engine != "transformers":
        raise InputError(f"--engine {engine!r}: transformers or vllm")
    from graduation.training.runner import ConfigError, answer_rows, load_model  # lazy: torch, transformers

    try:
        model, tokenizer = load_model(str(model_dir))
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    return answer_rows(model, tokenizer, rows, prompt_field=prompt_field, answer_field=answer_field,
                       id_field=id_field, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens,
                       seed=seed)


def _sample_vllm(model_dir: Path, rows, *, prompt_field, answer_field, id_field, samples, temperature,
                 max_new_tokens, seed) -> list[dict[str, Any]]:
    try:
        from vllm import LLM, SamplingParams  # type: ignore[import-not-found]
    except ImportError:
        raise InputError("--engine vllm: vLLM is not installed here; install it (one GPU) or use "
                         "--engine transformers") from None
    k = max(1, samples)
    llm = LLM(model=str(model_dir), seed=seed)
    params = SamplingParams(n=k, temperature=temperature if k > 1 else 0.0, max_tokens=max_new_tokens, seed=seed)
    results = llm.generate([str(r[prompt_field]) for r in rows], params)
    out = []
    for row, result in zip(rows, results):
        for completion in result.outputs:
            item = {prompt_field: row[prompt_field], "output": completion.text.strip()}
            if id_field and id_field in row:
                item[id_field] = row[id_field]
            if answer_field in row:
                item[answer_field] = row[answer_field]
            out.append(item)
    return out


__all__ = ["check_artifact", "sample"]
