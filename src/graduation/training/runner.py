"""Run a training job locally (CPU or one GPU) with TRL, evaluating held-out prompts every N steps.

    result = run(RunSpec(mode="grpo", model="path/to/model", output_dir=out, train_rows=..., eval_rows=...,
                         hyperparameters={...}, reward_funcs=funcs, reward_weights=weights,
                         on_round=write_evidence))
    rows = crystallise(checkpoint, prompts, verifiers, samples=4, lineage={...})

``run`` trains with ``GRPOTrainer`` (prompts + reference answers, rewards from verifiers) or ``SFTTrainer``
(prompt/completion rows). Evaluation rounds happen before the first step (round 0: the base model), every
``eval_every_steps`` steps and at the end: the held-out prompts are answered (greedy, or ``eval_samples``
samples each at ``eval_temperature``) and the rows ``{id, prompt, output, answer}`` are handed to
``on_round``, which verifies them and records the round (the job layer writes ``training_round`` evidence).
The runner itself never touches the registry, so it stays testable.

Hyperparameters are ``GRPOConfig``/``SFTConfig`` fields, plus the runner's own keys (``RUNNER_KEYS``).
An unknown key is an error naming the field, with a did-you-mean.

Over 400 lines because the run is one unit: its configuration, generation for evaluation rounds and the
TRL callbacks share the model, the tokenizer and the step counter (crystallisation is in ``crystallise``).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graduation.errors import ConfigError, NoLearningSignal
from graduation.training.keys import RUNNER_KEYS
CPU_DEFAULTS = {"use_cpu": True, "bf16": False, "fp16": False, "gradient_checkpointing": False}
COMMON_DEFAULTS = {"report_to": "none", "save_strategy": "no", "disable_tqdm": True, "logging_steps": 10,
                   "dataloader_num_workers": 0}


@dataclass(frozen=True)
class EvalRound:
    """One evaluation round: the held-out rows answered by the model at ``step``."""

    round: int
    step: int
    model: str
    rows: list[dict[str, Any]]
    seconds: float
    stopped: str | None = None  # set on the last round of a run that stopped early, with the reason
    checkpoint: Path | None = None  # the weights that answered, saved (``checkpoint_rounds``)


RoundCallback = Callable[[EvalRound], Any]


@dataclass
class RunSpec:
    mode: str  # "grpo" or "sft"
    model: str
    output_dir: Path
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # GRPOConfig/SFTConfig fields
    reward_funcs: list[Any] = field(default_factory=list)
    reward_weights: list[float] | None = None
    on_round: RoundCallback | None = None
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    id_field: str | None = None
    model_label: str | None = None
    #: optimizer-step progress: an object with ``start(total)``, ``advance(step, metric)`` and ``stop()`` (the CLI
    #: passes a progress bar); None or a bool: nothing shown (the training layer prints nothing itself)
    progress: Any = None
    max_steps_override: int | None = None
    peft: dict[str, Any] = field(default_factory=dict)  # {} = full fine-tuning; {"method": "lora", "lora_r": ...,
    #: "merge": True also saves the merged model to output_dir/merged}
    #: how a saved adapter names its base (``adapter_config.json``'s ``base_model_name_or_path``): a label such as
    #: ``tiny:arithmetic`` or a hub id, never the directory it was loaded from, so that the same weights trained
    #: anywhere have the same bytes (default: ``model`` as given)
    base_label: str | None = None
    resume: bool = False  # continue from the newest checkpoint under output_dir/trainer
    #: save the model that answers each evaluation round to ``output_dir/checkpoints/step-N`` (the registry
    #: registers each by its digest, so that every round belongs to the artifact that produced it)
    checkpoint_rounds: bool = False
    runner: dict[str, Any] = field(default_factory=dict)  # the runner's own keys (``training.keys.RUNNER_KEYS``)


def save_checkpoint(model, tokenizer, out: Path, base_label: str | None = None) -> Path:
    """Weights, config and tokenizer files, written the same way every time (same weights: same digest).

    A LoRA adapter (a peft model) is saved as its adapter alone; its config names the base by ``base_label``."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    config = out / "adapter_config.json"
    if base_label is not None and config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        data["base_model_name_or_path"] = base_label
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


@dataclass
class RunResult:
    model_path: Path
    steps: int
    seconds: float
    rounds: list[tuple[EvalRound, Any]]
    log_history: list[dict[str, Any]]
    stopped: str | None = None  # why training stopped early ("no learning signal: ...")
    adapter: bool = False  # model_path holds a LoRA adapter (its base: RunSpec.model); merged next to it
    merged_path: Path | None = None

    def reward_means(self) -> dict[str, list[float]]:
        """Per-reward-function means as TRL logged them (``rewards/<name>/mean``)."""
        out: dict[str, list[float]] = {}
        for entry in self.log_history:
            for key, value in entry.items():
                if key.startswith("rewards/") and key.endswith("/mean"):
                    out.setdefault(key[len("rewards/"):-len("/mean")], []).append(float(value))
        return out


# -- configuration ------------------------------------------------------------------------------------

def split_hyperparameters(mode: str, hyperparameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer config fields, runner keys). Unknown keys raise ``ConfigError`` with a did-you-mean."""
    config_cls = _config_class(mode)
    known = {f.name for f in dataclasses.fields(config_cls)}
    trainer: dict[str, Any] = {}
    runner: dict[str, Any] = {}
    problems = []
    for key, value in hyperparameters.items():
        if key in RUNNER_KEYS:
            runner[key] = value
        elif key in known:
            trainer[key] = value
        else:
            close = difflib.get_close_matches(key, sorted(known | set(RUNNER_KEYS)), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"see {config_cls.__name__} in TRL's documentation"
            problems.append(f"training.{mode}.{key}: not a {config_cls.__name__} field nor a runner key ({hint})")
    if problems:
        raise ConfigError("; ".join(problems))
    return trainer, runner


def _config_class(mode: str):
    if mode == "grpo":
        from trl import GRPOConfig

        return GRPOConfig
    if mode == "sft":
        from trl import SFTConfig

        return SFTConfig
    raise ConfigError(f"mode {mode!r}: use grpo or sft")


def build_config(mode: str, output_dir: Path, trainer_kwargs: Mapping[str, Any]):
    config_cls = _config_class(mode)
    kwargs = dict(COMMON_DEFAULTS)
    if not torch.cuda.is_available():
        kwargs.update(CPU_DEFAULTS)
    kwargs.update(trainer_kwargs)
    kwargs["output_dir"] = str(output_dir)
    try:
        with warnings.catch_warnings():  # transformers' renames (gradient_checkpointing) are not the user's to fix
            warnings.simplefilter("ignore", FutureWarning)
            return config_cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training.{mode}: {exc}") from None


def load_model(model: str, tokenizer_from: str | None = None):
    """A local model directory or a cached hub id (offline). Raises ``ConfigError`` naming it when missing.

    ``tokenizer_from``: where the tokenizer is (default: ``model``), e.g. a LoRA adapter's directory, which
    keeps the tokenizer it was trained with."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is the one that matters
    try:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from or model)
        loaded = AutoModelForCausalLM.from_pretrained(model)
    except Exception as exc:  # noqa: BLE001 - a config.json of another shape or with values of another type raises
        # TypeError, RuntimeError or a library's own validation error: a model that does not load, exit 2
        raise ConfigError(f"model {model!r} cannot be loaded offline: not a local model directory nor a cached hub "
                          f"id ({str(exc).splitlines()[0][:200]}); download it first or point base_model at a "
                          "local path") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return loaded, tokenizer


# -- generation -----------------------------------------------------------------------------------------

def prompt_text(tokenizer, prompt: Any) -> str:
    """What the model reads for a prompt: text as it is; chat messages through the tokenizer's chat template
    (with the generation prompt), as TRL's trainers format conversational rows."""
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError("task.chat is true but the model's tokenizer has no chat template; set task.chat: false "
                          "or use a chat model")
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[Any], *, samples: int = 0, temperature: float = 1.0,
             max_new_tokens: int = 64, batch_size: int = 256, seed: int | None = None) -> list[list[str]]:
    """Answers to each prompt: one greedy answer (``samples=0``) or ``samples`` sampled answers."""
    was_training = model.training
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    k = max(1, samples)
    out: list[list[str]] = []
    device = next(model.parameters()).device
    per_batch = max(1, batch_size // k)
    try:
        for start in range(0, len(prompts), per_batch):
            chunk = [prompt_text(tokenizer, p) for p in prompts[start:start + per_batch]]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
                                      "eos_token_id": tokenizer.eos_token_id}
            if samples > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=k)
            else:
                kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
            ids = model.generate(**enc, **kwargs)
            texts = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out.extend(texts[i * k:(i + 1) * k] for i in range(len(chunk)))
    finally:
        if was_training:
            model.train()
    return out


def answer_rows(model, tokenizer, rows: Sequence[Mapping[str, Any]], *, prompt_field: str, answer_field: str,
                id_field: str | None, samples: int, temperature: float, max_new_tokens: int,
                seed: int | None = None) -> list[dict[str, Any]]:
    answers = generate(model, tokenizer, [_prompt(r[prompt_field]) for r in rows], samples=samples,
                       temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    out = []
    for row, outputs in zip(rows, answers):
        for output in outputs:
            item = {prompt_field: row[prompt_field], "output": output}
            if "source_prompt" in row:
                item["source_prompt"] = row["source_prompt"]
            if id_field and id_field in row:
                item[id_field] = row[id_field]
            if answer_field in row:
                item[answer_field] = row[answer_field]
            out.append(item)
    return out


# -- the run ---------------------------------------------------------------------------------------------

def run(spec: RunSpec) -> RunResult:
    """Train, evaluating before, every ``eval_every_steps`` and after; save the model to ``output_dir/model``."""
    from transformers import TrainerCallback

    # settings come split (a job.yaml keeps trainer fields and runner keys apart); runner keys given among the
    # trainer's fields still work for callers holding one mapping (the experiment, tests)
    trainer_kwargs, runner = split_hyperparameters(spec.mode, spec.hyperparameters)
    unknown = sorted(set(spec.runner) - set(RUNNER_KEYS))
    if unknown:
        raise ConfigError(f"not runner keys: {', '.join(unknown)} (runner keys: {', '.join(sorted(RUNNER_KEYS))})")
    runner = {**runner, **spec.runner}
    if spec.max_steps_override is not None:
        trainer_kwargs["max_steps"] = spec.max_steps_override
    if runner.get("torch_threads"):
        torch.set_num_threads(int(runner["torch_threads"]))
    if spec.mode == "grpo" and not spec.reward_funcs:
        raise ConfigError("GRPO needs reward functions (the domain's verifiers)")
    if not spec.train_rows:
        raise ConfigError(f"no training rows for {spec.mode}")
    output_dir = Path(spec.output_dir)
    config = build_config(spec.mode, output_dir / "trainer", trainer_kwargs)
    if spec.mode == "grpo" and spec.reward_weights is not None:
        config.reward_weights = list(spec.reward_weights)
    model, tokenizer = load_model(spec.model)
    peft_config = lora_config(spec.peft) if spec.peft else None
    label = spec.model_label or spec.model
    no_signal = int(runner.get("no_signal_steps", 50) or 0) if spec.mode == "grpo" else 0
    stopped: list[str] = []
    eval_every = int(runner.get("eval_every_steps", 0) or 0)
    eval_first = bool(runner.get("eval_before_training", spec.mode == "grpo"))
    samples = int(runner.get("eval_samples", 0) or 0)
    temperature = float(runner.get("eval_temperature", 1.0))
    max_new = int(runner.get("eval_max_new_tokens") or getattr(config, "max_completion_length", None) or 64)
    rounds: list[tuple[EvalRound, Any]] = []
    seed = int(getattr(config, "seed", 0))

    def evaluate(step: int, current) -> None:
        if not spec.eval_rows:
            return
        started = time.perf_counter()
        rows = answer_rows(current, tokenizer, spec.eval_rows, prompt_field=spec.prompt_field,
                           answer_field=spec.answer_field, id_field=spec.id_field, samples=samples,
                           temperature=temperature, max_new_tokens=max_new, seed=seed + 1000 + step)
        checkpoint = save_checkpoint(current, tokenizer, output_dir / "checkpoints" / f"step-{step}",
                                     spec.base_label or spec.model) if spec.checkpoint_rounds else None
        r = EvalRound(len(rounds), step, f"{label}@step-{step}", rows, time.perf_counter() - started,
                      stopped[0] if stopped else None, checkpoint)
        outcome = spec.on_round(r) if spec.on_round is not None else None
        rounds.append((r, outcome))

    progress = spec.progress if hasattr(spec.progress, "advance") else _Silent()

    class Rounds(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            progress.start(state.max_steps)
            if eval_first:
                evaluate(0, model)

        def on_step_end(self, args, state, control, model=None, **kw):
            progress.advance(state.global_step, _last_reward(state))
            if no_signal and not stopped:
                flat = flat_reward(state.log_history, no_signal)
                if flat is not None:
                    stopped.append(f"no learning signal: the mean reward stayed {flat:.3f} for {no_signal} steps "
                                   f"(up to step {state.global_step})")
                    control.should_training_stop = True
                    return  # the final round (on_train_end) records the stop
            if eval_every and state.global_step % eval_every == 0 and state.global_step < state.max_steps:
                evaluate(state.global_step, model)

        def on_train_end(self, args, state, control, model=None, **kw):
            progress.stop()
            if not rounds or rounds[-1][0].step != state.global_step:
                evaluate(state.global_step, model)

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer = _trainer(spec, model, tokenizer, config, [Rounds()], peft_config)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # logs stay in state.log_history; the progress bar shows the reward
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            trainer.train(resume_from_checkpoint=newest_checkpoint(output_dir / "trainer") if spec.resume else None)
    finally:
        progress.stop()
    final = output_dir / "model"
    if spec.checkpoint_rounds or peft_config is not None:  # the same bytes as the last round's checkpoint
        save_checkpoint(trainer.model, tokenizer, final, spec.base_label or spec.model)
    else:
        trainer.save_model(str(final))
        tokenizer.save_pretrained(str(final))
    merged = None
    if peft_config is not None and spec.peft.get("merge"):
        merged = output_dir / "merged"
        save_checkpoint(trainer.model.merge_and_unload(), tokenizer, merged)
    return RunResult(final, int(trainer.state.global_step), time.perf_counter() - started, rounds,
                     list(trainer.state.log_history), stopped[0] if stopped else None, peft_config is not None,
                     merged)


def flat_reward(log_history: Sequence[Mapping[str, Any]], steps: int) -> float | None:
    """The mean reward if it stayed the same (to 1e-9) over the logged steps of the last ``steps`` steps.

    Needs logged rewards spanning at least ``steps`` optimizer steps; None while the reward still moves.
    """
    logged = [(int(e["step"]), float(e["reward"])) for e in log_history if "reward" in e and "step" in e]
    if not logged:
        return None
    last_step = logged[-1][0]
    window = [r for s, r in logged if s > last_step - steps]
    if last_step < steps or len(window) < 2:
        return None
    return window[0] if max(window) - min(window) <= 1e-9 else None


def newest_checkpoint(trainer_dir: Path) -> str | None:
    """``checkpoint-<step>`` with the highest step under the trainer's output directory, if any."""
    best = None
    if trainer_dir.is_dir():
        for child in trainer_dir.iterdir():
            if child.is_dir() and child.name.startswith("checkpoint-") and child.name[11:].isdigit():
                if best is None or int(child.name[11:]) > int(best.name[11:]):
                    best = child
    return str(best) if best is not None else None


def lora_config(settings: Mapping[str, Any]):
    """A ``peft.LoraConfig`` from a job's ``peft`` settings (QLoRA's 4-bit loading needs a GPU and bitsandbytes)."""
    try:
        from peft import LoraConfig
    except ImportError:
        raise ConfigError("--peft lora needs the peft package: pip install 'graduation[train]'") from None
    if settings.get("method") == "qlora" and not torch.cuda.is_available():
        raise ConfigError("--peft qlora loads the base in 4 bits with bitsandbytes, which needs a CUDA GPU; "
                          "use --peft lora on CPU")
    return LoraConfig(r=int(settings.get("lora_r", 16)), lora_alpha=int(settings.get("lora_alpha", 32)),
                      lora_dropout=float(settings.get("lora_dropout", 0.05)),
                      target_modules=settings.get("lora_target_modules", "all-linear"), task_type="CAUSAL_LM")


def _prompt(value: Any) -> Any:
    """A prompt cell: chat messages stay a list of messages; anything else is text."""
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        return [{"role": str(m.get("role", "user")), "content": str(m.get("content", ""))} for m in value]
    return str(value)


def trainer_rows(spec: RunSpec) -> list[dict[str, Any]]:
    """The rows the trainer sees: the rendered prompt (text or messages) and, for SFT, the completion
    (an assistant message when the prompt is conversational, as TRL expects)."""
    if spec.mode == "grpo":
        return [{**{k: v for k, v in r.items() if _plain(v)}, "prompt": _prompt(r[spec.prompt_field]),
                 spec.answer_field: r[spec.answer_field]} for r in spec.train_rows]
    rows = []
    for r in spec.train_rows:
        prompt = _prompt(r[spec.prompt_field])
        completion: Any = str(r["completion"])
        if isinstance(prompt, list):
            completion = [{"role": "assistant", "content": completion}]
        rows.append({"prompt": prompt, "completion": completion})
    return rows


def _trainer(spec: RunSpec, model, tokenizer, config, callbacks, peft_config=None):
    from datasets import Dataset

    rows = trainer_rows(spec)
    if spec.mode == "grpo":
        from trl import GRPOTrainer

        return GRPOTrainer(model=model, reward_funcs=list(spec.reward_funcs), args=config,
                           train_dataset=Dataset.from_list(rows), processing_class=tokenizer, callbacks=callbacks,
                           peft_config=peft_config)
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                      callbacks=callbacks, peft_config=peft_config)


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _last_reward(state) -> float | None:
    for entry in reversed(state.log_history):
        if "reward" in entry:
            return float(entry["reward"])
        if "loss" in entry:
            return float(entry["loss"])
    return None


class _Silent:
    """No progress shown."""

    def start(self, total: int) -> None:
        pass

    def advance(self, step: int, metric: float | None) -> None:
        pass

    def stop(self) -> None:
        pass


__all__ = ["ConfigError", "EvalRound", "NoLearningSignal", "flat_reward", "lora_config",
           "newest_checkpoint", "RUNNER_KEYS", "RoundCallback", "RunResult", "RunSpec",
           "answer_rows", "build_config", "generate", "load_model", "run", "split_hyperparameters"]
