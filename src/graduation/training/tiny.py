"""A tiny Llama-style model and a locally trained tokenizer, so tests and the demo download nothing.

``build_tiny_base(out_dir, corpus)`` trains a character-level tokenizer on the corpus (the
``tokenizers`` package), builds a Llama model of a few hundred thousand parameters, "pretrains" it
with plain causal-LM training on the corpus for a few seconds, and saves both with
``save_pretrained`` so that any TRL trainer can load the directory as a local model.

Prompts use a plain format, no chat template: the prompt is the text up to and including ``=``,
the completion is the answer followed by the end-of-sequence token.

A randomly initialised policy collapses under GRPO (its samples are all wrong, every group has zero
reward variance, nothing is learned). ``arithmetic_corpus`` therefore writes a *noisy* pretraining
corpus: each sum is correct with probability ``p_correct`` and otherwise off by a small amount, so the
base model puts about that much probability on correct answers, and GRPO has something to sharpen.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]


@dataclass(frozen=True)
class TinyConfig:
    """Shape of the tiny model and of its pretraining run."""

    hidden_size: int = 96
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 64
    pretrain_steps: int = 300
    pretrain_batch_size: int = 64
    pretrain_lr: float = 3e-3
    pretrain_time_budget_s: float | None = None
    threads: int | None = 1  # a model this small runs fastest on one thread, and never oversubscribes a busy CPU
    seed: int = 0


@dataclass(frozen=True)
class TinyBase:
    """What ``build_tiny_base`` produced."""

    path: Path
    parameters: int
    steps: int
    final_loss: float
    seconds: float


def train_tokenizer(corpus: list[str], *, numbers_as_tokens: bool = False) -> PreTrainedTokenizerFast:
    """A tokenizer trained on the corpus: one token per character (the default), or with
    ``numbers_as_tokens`` one token per run of digits and per other character."""
    if not corpus:
        raise ValueError("the tokenizer needs a non-empty corpus")
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    pattern = r"\d+|[\s\S]" if numbers_as_tokens else r"[\s\S]"
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                   unk_token=UNK, padding_side="left")
    return fast


def build_model(tokenizer: PreTrainedTokenizerFast, config: TinyConfig = TinyConfig()) -> LlamaForCausalLM:
    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads, max_position_embeddings=config.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(llama)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def pretrain(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, corpus: list[str],
             config: TinyConfig = TinyConfig()) -> tuple[int, float]:
    """Plain causal-LM training on ``corpus`` (each text followed by EOS). Returns (steps, last loss)."""
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for text in corpus]
    longest = max(len(x) for x in ids)
    if longest > config.max_position_embeddings:
        raise ValueError(f"a corpus text has {longest} tokens, more than max_position_embeddings="
                         f"{config.max_position_embeddings}; shorten the texts or raise it")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.pretrain_lr, weight_decay=0.0)
    warmup = max(1, config.pretrain_steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, config.pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    model.train()
    start = time.perf_counter()
    loss_value = float("nan")
    step = 0
    for step in range(config.pretrain_steps):
        if config.pretrain_time_budget_s is not None and time.perf_counter() - start > config.pretrain_time_budget_s:
            break
        batch = [ids[rng.randrange(len(ids))] for _ in range(config.pretrain_batch_size)]
        width = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            labels[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        for group in optimizer.param_groups:
            group["lr"] = config.pretrain_lr * lr_at(step)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss_value = float(loss.detach())
    model.eval()
    torch.set_num_threads(previous_threads)
    return step + 1, loss_value


def build_tiny_base(out_dir: Path | str, corpus: list[str], config: TinyConfig = TinyConfig()) -> TinyBase:
    """Tokenizer + tiny Llama + short pretraining on ``corpus``; saved under ``out_dir``."""
    start = time.perf_counter()
    out = Path(out_dir)
    tokenizer = train_tokenizer(corpus)
    model = build_model(tokenizer, config)
    steps, loss = pretrain(model, tokenizer, corpus, config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    return TinyBase(out, params, steps, loss, time.perf_counter() - start)


def arithmetic_corpus(n: int = 4000, *, p_correct: float = 0.4, habit: str = "negate", max_operand: int = 9,
                      seed: int = 0) -> list[str]:
    """Noisy sums ``"a+b=c"``: correct with probability ``p_correct``, else written with a habit.

    ``negate`` (the default): a sign error, ``"3+4=-7"``: well formatted, wrong, and the same mistake on
    every prompt, so the base model samples a correct answer about ``p_correct`` of the time, its greedy
    answer is mostly wrong, and a reward that measures correctness can remove the habit everywhere at once.
    ``plus_one``: one too many, ``"3+4=8"``; the wrong answer of one prompt is the right one of another,
    which makes the habit much slower to unlearn (a harder variant, for experiments).
    """
    if not 0.0 <= p_correct <= 1.0:
        raise ValueError(f"p_correct must be in [0, 1], got {p_correct!r}")
    if habit not in ("negate", "plus_one"):
        raise ValueError(f"habit must be 'negate' or 'plus_one', got {habit!r}")
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(n):
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        answer = str(a + b)
        if rng.random() >= p_correct:
            answer = f"-{a + b}" if habit == "negate" else str(a + b + 1)
        texts.append(f"{a}+{b}={answer}")
    return texts


__all__ = ["TinyBase", "TinyConfig", "arithmetic_corpus", "build_model", "build_tiny_base", "pretrain",
           "train_tokenizer"]
