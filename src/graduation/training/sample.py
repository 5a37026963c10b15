"""Sampling a registered artifact on a domain's held-out prompts (`registry evaluate --generate`).

    rows = sample(model_dir, prompts_rows, prompt_field=..., answer_field=..., id_field=..., engine="transformers")
    rows = sample(adapter_dir, prompts_rows, ..., base_dir=base_dir)   # a LoRA adapter, applied to its base

Before anything is loaded, the directory is hashed again and must match the registered digest (an adapter's
base too): the outputs are then made by the registry from that digest (``origin: generated``), not supplied
by a user. ``engine="vllm"`` uses vLLM when it is installed (one GPU); ``transformers`` runs anywhere (CPU
included).
"""

from __future__ import annotations

import json
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
           seed: int = 0, engine: str = "transformers", base_dir: Path | None = None) -> list[dict[str, Any]]:
    """Outputs of the model in ``model_dir`` for each row's prompt (``samples`` > 1: k per prompt).

    ``base_dir``: ``model_dir`` holds a LoRA adapter (peft) of the model in ``base_dir``; the adapter is
    applied to that base (and its tokenizer, kept beside the adapter, is used when there is one)."""
    if engine == "vllm":
        return _sample_vllm(model_dir, rows, prompt_field=prompt_field, answer_field=answer_field,
                            id_field=id_field, samples=samples, temperature=temperature,
                            max_new_tokens=max_new_tokens, seed=seed, base_dir=base_dir)
    if engine != "transformers":
        raise InputError(f"--engine {engine!r}: transformers or vllm")
    from graduation.training.runner import ConfigError, answer_rows, load_model  # lazy: torch, transformers

    try:
        if base_dir is None:
            model, tokenizer = load_model(str(model_dir))
        else:
            own = (Path(model_dir) / "tokenizer_config.json").is_file()
            model, tokenizer = load_model(str(base_dir), str(model_dir) if own else None)
            model = _with_adapter(model, Path(model_dir), Path(base_dir))
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    try:
        return answer_rows(model, tokenizer, rows, prompt_field=prompt_field, answer_field=answer_field,
                           id_field=id_field, samples=samples, temperature=temperature,
                           max_new_tokens=max_new_tokens, seed=seed)
    except (IndexError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        # a tokenizer whose ids the model has no embedding for, and the like: the registered files do not make a
        # model that generates (exit 2, never a traceback)
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{model_dir}: the registered model does not generate ({type(exc).__name__}: {first}); "
                         "its tokenizer and weights do not fit together") from None


def _with_adapter(base, adapter_dir: Path, base_dir: Path):
    """``base`` with the LoRA adapter in ``adapter_dir`` applied (``InputError`` naming both when it does not fit)."""
    try:
        from peft import PeftModel
    except ImportError:
        raise InputError(f"{adapter_dir} is a LoRA adapter: sampling it needs peft; install the train extra "
                         "(`pip install 'graduation[train]'`) or register and evaluate its merged model") from None
    try:
        return PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    except Exception as exc:  # noqa: BLE001 - an adapter_config.json of another shape raises TypeError out of peft
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{adapter_dir}: the LoRA adapter does not load onto its registered base {base_dir} "
                         f"({first}); register the adapter with the base it was trained on (--adapter-of)") from None


def _lora_rank(adapter_dir: Path) -> int:
    try:
        rank = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8")).get("r", 16)
    except (OSError, ValueError, AttributeError):
        raise InputError(f"{adapter_dir / 'adapter_config.json'}: not a readable LoRA adapter config") from None
    return rank if isinstance(rank, int) and not isinstance(rank, bool) and rank > 0 else 16


def _sample_vllm(model_dir: Path, rows, *, prompt_field, answer_field, id_field, samples, temperature,
                 max_new_tokens, seed, base_dir: Path | None = None) -> list[dict[str, Any]]:
    try:
        from vllm import LLM, SamplingParams  # type: ignore[import-not-found]
    except ImportError:
        raise InputError("--engine vllm: vLLM is not installed here; install it (one GPU) or use "
                         "--engine transformers") from None
    k = max(1, samples)
    params = SamplingParams(n=k, temperature=temperature if k > 1 else 0.0, max_tokens=max_new_tokens, seed=seed)
    prompts = [str(r[prompt_field]) for r in rows]
    if base_dir is None:
        results = LLM(model=str(model_dir), seed=seed).generate(prompts, params)
    else:  # the adapter served on its base (vLLM's LoRA support)
        from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

        llm = LLM(model=str(base_dir), seed=seed, enable_lora=True, max_lora_rank=max(16, _lora_rank(model_dir)))
        results = llm.generate(prompts, params, lora_request=LoRARequest("adapter", 1, str(model_dir)))
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
