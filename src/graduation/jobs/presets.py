"""Hyperparameter presets by model size and mode, and how a job's settings are resolved (pure, no torch).

    size = model_size("Qwen/Qwen2.5-7B-Instruct", root)        # ModelSize("8b", 7_000_000_000, "name")
    resolved = resolve_hyperparameters("grpo", size, domain={"max_steps": 300}, overrides={"learning_rate": 2e-6})
    resolved.values        # every key a recipe must state, then the domain's and the command line's
    resolved.sources       # {"learning_rate": "--set", "max_steps": "domain", "num_generations": "preset 8b"}

Order, later wins: the preset of the model's size class, the domain file's ``training.grpo|sft``, then
``--set KEY=VALUE`` on the command line. Every recipe states the keys in ``STATED`` whatever their source,
so a 225k-parameter model and a 7B model never silently share a learning rate.

Size classes: ``tiny`` (under 50M parameters: test models), ``1b`` (<= 1.5B), ``8b`` (<= 9B), ``70b``
(<= 80B), ``xl`` (larger). The size comes from ``--model-size``, else the model's ``config.json`` when it
is a local directory (parameters estimated from its shape), else a size in the name (``-7B``, ``0.5b``).

The numbers follow the usual published full fine-tuning and LoRA settings for instruction models of each
size (GRPO: smaller learning rates than SFT; LoRA: about ten times the full learning rate).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graduation.errors import InputError

SIZE_CLASSES = ("tiny", "1b", "8b", "70b", "xl")
# (class, largest parameter count in it)
_BOUNDS = (("tiny", 50_000_000), ("1b", 1_500_000_000), ("8b", 9_000_000_000), ("70b", 80_000_000_000))

#: Keys every recipe states, per mode.
STATED = {
    "grpo": ("learning_rate", "lr_scheduler_type", "warmup_steps", "max_steps", "per_device_train_batch_size",
             "gradient_accumulation_steps", "num_generations", "max_completion_length", "bf16",
             "gradient_checkpointing"),
    "sft": ("learning_rate", "lr_scheduler_type", "warmup_steps", "num_train_epochs", "per_device_train_batch_size",
            "gradient_accumulation_steps", "max_length", "bf16", "gradient_checkpointing"),
}

_GRPO = {
    "tiny": dict(learning_rate=5e-4, lr_scheduler_type="constant", warmup_steps=0, max_steps=200,
                 per_device_train_batch_size=64, gradient_accumulation_steps=1, num_generations=8,
                 max_completion_length=16, bf16=False, gradient_checkpointing=False),
    "1b": dict(learning_rate=5e-6, lr_scheduler_type="cosine", warmup_steps=0.05, max_steps=500,
               per_device_train_batch_size=8, gradient_accumulation_steps=4, num_generations=8,
               max_completion_length=1024, bf16=True, gradient_checkpointing=True),
    "8b": dict(learning_rate=1e-6, lr_scheduler_type="cosine", warmup_steps=0.05, max_steps=500,
               per_device_train_batch_size=4, gradient_accumulation_steps=8, num_generations=8,
               max_completion_length=1024, bf16=True, gradient_checkpointing=True),
    "70b": dict(learning_rate=5e-7, lr_scheduler_type="cosine", warmup_steps=0.05, max_steps=300,
                per_device_train_batch_size=1, gradient_accumulation_steps=16, num_generations=8,
                max_completion_length=1024, bf16=True, gradient_checkpointing=True),
}
for _size in ("1b", "8b", "70b"):  # cluster runs checkpoint, so `registry jobs run --resume` has a place to start
    _GRPO[_size].update(save_strategy="steps", save_steps=100)
_GRPO["xl"] = {**_GRPO["70b"], "learning_rate": 3e-7}
_SFT = {
    "tiny": dict(learning_rate=2e-4, lr_scheduler_type="linear", warmup_steps=0, num_train_epochs=3,
                 per_device_train_batch_size=16, gradient_accumulation_steps=1, max_length=128, bf16=False,
                 gradient_checkpointing=False),
    "1b": dict(learning_rate=2e-5, lr_scheduler_type="cosine", warmup_steps=0.03, num_train_epochs=3,
               per_device_train_batch_size=8, gradient_accumulation_steps=2, max_length=2048, bf16=True,
               gradient_checkpointing=True),
    "8b": dict(learning_rate=1e-5, lr_scheduler_type="cosine", warmup_steps=0.03, num_train_epochs=2,
               per_device_train_batch_size=4, gradient_accumulation_steps=8, max_length=4096, bf16=True,
               gradient_checkpointing=True),
    "70b": dict(learning_rate=5e-6, lr_scheduler_type="cosine", warmup_steps=0.03, num_train_epochs=2,
                per_device_train_batch_size=1, gradient_accumulation_steps=32, max_length=4096, bf16=True,
                gradient_checkpointing=True),
}
for _size in ("1b", "8b", "70b"):
    _SFT[_size].update(save_strategy="steps", save_steps=500)
_SFT["xl"] = {**_SFT["70b"], "learning_rate": 3e-6}
PRESETS = {"grpo": _GRPO, "sft": _SFT}
#: With LoRA the adapter learns with a larger rate: these replace the full fine-tuning rate.
LORA_LEARNING_RATE = {"grpo": {"tiny": 1e-3, "1b": 5e-5, "8b": 1e-5, "70b": 5e-6, "xl": 3e-6},
                      "sft": {"tiny": 1e-3, "1b": 2e-4, "8b": 1e-4, "70b": 5e-5, "xl": 3e-5}}
LORA_DEFAULTS = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "lora_target_modules": "all-linear"}
PEFT_METHODS = ("lora", "qlora")


@dataclass(frozen=True)
class ModelSize:
    size_class: str
    parameters: int | None
    source: str  # "--model-size", "config.json", "name", "tiny", "unknown"

    def to_dict(self) -> dict[str, Any]:
        return {"size_class": self.size_class, "parameters": self.parameters, "source": self.source}


@dataclass
class Resolved:
    mode: str
    size: ModelSize
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    peft: dict[str, Any] = field(default_factory=dict)

    def plan(self) -> dict[str, Any]:
        return {"size": self.size.to_dict(), "sources": dict(self.sources), "peft": dict(self.peft)}


def size_class(parameters: int) -> str:
    for name, bound in _BOUNDS:
        if parameters <= bound:
            return name
    return "xl"


_NAME_SIZE = re.compile(r"(?<![0-9a-z.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


def parameters_from_name(model: str) -> int | None:
    """``Qwen2.5-7B-Instruct`` -> 7e9, ``SmolLM2-135M`` -> 1.35e8; the last size in the name wins."""
    found = _NAME_SIZE.findall(Path(model).name.replace("_", "-"))
    if not found:
        return None
    number, unit = found[-1]
    return int(float(number) * (1e9 if unit.lower() == "b" else 1e6))


def parameters_from_config(config: dict[str, Any]) -> int | None:
    """About how many parameters a decoder-only transformer of this ``config.json`` has."""
    try:
        h = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config.get("vocab_size", 32000))
        inter = int(config.get("intermediate_size") or 4 * h)
        heads = int(config.get("num_attention_heads") or 1)
        kv = int(config.get("num_key_value_heads") or heads)
    except (KeyError, TypeError, ValueError):
        return None
    head_dim = h // max(1, heads)
    attention = h * h * 2 + 2 * h * kv * head_dim
    mlp = 3 * h * inter
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", False) else 2)
    return layers * (attention + mlp) + embeddings


def model_size(model: str, root: Path | None = None, declared: str | None = None) -> ModelSize:
    """The size class of ``model``: declared, else from a local ``config.json``, else from its name."""
    if declared:
        if declared not in SIZE_CLASSES:
            raise InputError(f"--model-size {declared!r}: use one of {', '.join(SIZE_CLASSES)}")
        return ModelSize(declared, None, "--model-size")
    if model.startswith("tiny:"):
        return ModelSize("tiny", None, "tiny")
    candidates = [Path(model)]
    if root is not None and not Path(model).is_absolute():
        candidates.insert(0, Path(root) / model)
    for path in candidates:
        config = path / "config.json"
        if config.is_file():
            try:
                params = parameters_from_config(json.loads(config.read_text("utf-8")))
            except (OSError, ValueError):
                params = None
            if params:
                return ModelSize(size_class(params), params, "config.json")
    params = parameters_from_name(model)
    if params:
        return ModelSize(size_class(params), params, "name")
    raise InputError(f"the size of model {model!r} is unknown (no local config.json, no size such as -7B in its "
                     f"name): pass --model-size with one of {', '.join(SIZE_CLASSES)}")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["learning_rate=1e-6", "bf16=false"]`` -> typed values (YAML scalars); a malformed pair is an error."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise InputError(f"--set {pair!r}: write KEY=VALUE with a trainer or runner key, e.g. --set "
                             "learning_rate=1e-6")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-6 as text; a number is what is meant
        if isinstance(value, (dict, list)) or (value is not None and not isinstance(value, (str, int, float, bool))):
            raise InputError(f"--set {pair!r}: the value must be a number, a boolean or a string")
        out[key] = value
    return out


def resolve_hyperparameters(mode: str, size: ModelSize, *, domain: dict[str, Any] | None = None,
                            overrides: dict[str, Any] | None = None, peft: str | None = None) -> Resolved:
    """The preset of ``size`` for ``mode``, then the domain file's values, then the command line's."""
    if mode not in PRESETS:
        raise InputError(f"mode {mode!r}: use grpo or sft")
    if peft is not None and peft not in PEFT_METHODS:
        raise InputError(f"--peft {peft!r}: use one of {', '.join(PEFT_METHODS)}")
    preset = dict(PRESETS[mode][size.size_class])
    label = f"preset {size.size_class}"
    sources = {k: label for k in preset}
    peft_settings: dict[str, Any] = {}
    if peft is not None:
        preset["learning_rate"] = LORA_LEARNING_RATE[mode][size.size_class]
        sources["learning_rate"] = f"{label} (lora)"
        peft_settings = {"method": peft, **LORA_DEFAULTS}
    values = dict(preset)
    for origin, layer in (("domain", domain or {}), ("--set", overrides or {})):
        for key, value in layer.items():
            if key in LORA_DEFAULTS:
                if peft is None:
                    raise InputError(f"{key} ({origin}): LoRA settings need --peft lora")
                peft_settings[key] = value
            else:
                values[key] = value
            sources[key] = origin
    if mode == "grpo":
        _check_grpo_batch(values)
    return Resolved(mode, size, values, sources, peft_settings)


def _check_grpo_batch(values: dict[str, Any]) -> None:
    """GRPO groups completions by prompt: the generation batch must split into whole groups."""
    try:
        batch = int(values["per_device_train_batch_size"]) * int(values.get("gradient_accumulation_steps", 1))
        groups = int(values["num_generations"])
    except (KeyError, TypeError, ValueError):
        return
    if groups < 2:
        raise InputError(f"num_generations {groups}: GRPO compares at least 2 completions per prompt")
    if batch % groups:
        raise InputError(f"per_device_train_batch_size x gradient_accumulation_steps = {batch} is not a multiple of "
                         f"num_generations {groups}: GRPO needs whole groups; change one of them (--set ...)")


__all__ = ["LORA_DEFAULTS", "ModelSize", "PEFT_METHODS", "PRESETS", "Resolved", "SIZE_CLASSES", "STATED",
           "model_size", "parameters_from_config", "parameters_from_name", "parse_overrides",
           "resolve_hyperparameters", "size_class"]
