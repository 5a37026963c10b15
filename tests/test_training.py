"""The TRL runtime on CPU: the tiny base model, verifier-backed rewards, real GRPO and SFT steps, crystallisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from graduation.spec import VerifierSpec  # noqa: E402
from graduation.training import rewards as rw  # noqa: E402
from graduation.verifiers import build  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SUM = VerifierSpec(name="sum-value", kind="numeric", role="substance",
                   options={"abs_tol": 0, "rel_tol": 0, "last_number_fallback": False})
SHAPE = VerifierSpec(name="integer-shape", kind="regex", role="format",
                     options={"pattern": "^-?[0-9]+$", "full_match": True, "strip": True})


def rows(split: str) -> list[dict]:
    path = REPO / "domains" / "data" / "toy-arithmetic" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_tiny_base

    out = tmp_path_factory.mktemp("tiny")
    base = build_tiny_base(out, arithmetic_corpus(2000, p_correct=0.35, max_operand=9),
                           TinyConfig(hidden_size=48, intermediate_size=96, pretrain_steps=60))
    assert 20_000 < base.parameters < 1_000_000
    return out


class CountingPool:
    """Stands in for the verifier pool: records every batch it is asked to verify, answers in-process."""

    def __init__(self) -> None:
        self.batches: list[list] = []

    def verify_many(self, jobs):
        jobs = list(jobs)
        self.batches.append(jobs)
        return [verifier(*item) for verifier, item in jobs]

    def outputs(self, name: str) -> list:
        return [item[0] for batch in self.batches for verifier, item in batch if verifier.name == name]


def test_tokenizer_is_trained_locally_and_ends_answers_with_eos(tiny: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    ids = tok("3+4=-7" + tok.eos_token, add_special_tokens=False)["input_ids"]
    assert ids[-1] == tok.eos_token_id and len(ids) == 7  # one token per character, then EOS
    assert tok.decode(ids, skip_special_tokens=True) == "3+4=-7"
    assert tok.pad_token is not None and tok.padding_side == "left"


def test_noisy_corpus_has_the_declared_habit():
    from graduation.training.tiny import arithmetic_corpus

    texts = arithmetic_corpus(4000, p_correct=0.3, seed=1)
    right = sum(eval(t.split("=")[0]) == int(t.split("=")[1]) for t in texts)  # noqa: S307 (our own digits)
    assert abs(right / len(texts) - 0.3) < 0.03
    assert all(t.split("=")[1].startswith("-") for t in texts if eval(t.split("=")[0]) != int(t.split("=")[1]))  # noqa: S307
    with pytest.raises(ValueError, match="p_correct"):
        arithmetic_corpus(10, p_correct=1.5)


def test_rewards_are_the_verifiers_verdicts_one_function_each():
    pool = CountingPool()
    funcs, weights = rw.reward_functions([build(SUM), build(SHAPE)], format_weight=0.1, pool=pool)
    assert [f.__name__ for f in funcs] == ["substance.sum-value", "format.integer-shape"]
    assert weights == [1.0, 0.1]
    completions = ["7", "-7", "seven", "8"]
    answers = ["7", "7", "7", "7"]
    assert funcs[0](["3+4="] * 4, completions, answer=answers) == [1.0, 0.0, 0.0, 0.0]
    assert funcs[1](["3+4="] * 4, completions, answer=answers) == [1.0, 1.0, 0.0, 1.0]
    # one round-trip to the pool for the batch: every verifier at once, the second function reuses it
    assert len(pool.batches) == 1
    assert [v.name for v, _ in pool.batches[0]] == ["sum-value"] * 4 + ["integer-shape"] * 4
    assert pool.outputs("sum-value") == completions


def test_format_rewards_can_never_outweigh_correctness():
    with pytest.raises(ValueError, match="well-formed wrong answer"):
        rw.reward_functions([build(SUM), build(SHAPE)], format_weight=1.0)
    with pytest.raises(ValueError, match="no substance verifier"):
        rw.reward_functions([build(SHAPE)], format_weight=0.1)


def test_chat_completions_are_verified_by_their_last_message():
    assert rw.completion_text([{"role": "assistant", "content": "12"}]) == "12"
    assert rw.python_identifier("format.integer-shape") == "format_integer_shape"


def test_unknown_hyperparameter_is_named_with_a_hint():
    from graduation.training.runner import ConfigError, split_hyperparameters

    with pytest.raises(ConfigError, match=r"training\.grpo\.num_generation: .*did you mean 'num_generations'"):
        split_hyperparameters("grpo", {"num_generation": 4})
    trainer, runner = split_hyperparameters("sft", {"learning_rate": 1e-3, "eval_samples": 2})
    assert trainer == {"learning_rate": 1e-3} and runner == {"eval_samples": 2}


def test_missing_model_is_a_clear_error(tmp_path: Path):
    from graduation.training.runner import ConfigError, load_model

    with pytest.raises(ConfigError, match="cannot be loaded offline"):
        load_model(str(tmp_path / "no-such-model"))


GRPO_FAST = {"learning_rate": 5e-4, "num_generations": 4, "per_device_train_batch_size": 8,
             "max_completion_length": 4, "max_steps": 3, "beta": 0.0, "logging_steps": 1, "seed": 0,
             "eval_every_steps": 2, "eval_samples": 2}


@pytest.mark.slow
def test_grpo_steps_on_cpu_with_verifier_rewards_and_evaluation_rounds(tiny: Path, tmp_path: Path):
    from graduation.training.runner import RunSpec, run

    pool = CountingPool()
    funcs, weights = rw.reward_functions([build(SUM), build(SHAPE)], format_weight=0.1, pool=pool)
    seen = []
    result = run(RunSpec("grpo", str(tiny), tmp_path / "out", rows("train")[:16], rows("eval")[:10], dict(GRPO_FAST),
                         funcs, weights, on_round=lambda r: seen.append(r) or len(r.rows), id_field="id",
                         progress=False))
    assert result.steps == 3
    assert [(r.round, r.step) for r in seen] == [(0, 0), (1, 2), (2, 3)]
    assert all(len(r.rows) == 20 and {"prompt", "output", "answer", "id"} <= set(r.rows[0]) for r in seen)
    means = result.reward_means()
    assert set(means) == {"substance.sum-value", "format.integer-shape"}  # logged per verifier by TRL
    assert len(means["substance.sum-value"]) == 3
    # the reward really came from the verifier: every generated completion went through it
    assert len(pool.batches) == 3 and len(pool.outputs("sum-value")) == 3 * 8
    assert (result.model_path / "config.json").is_file()


def test_sft_steps_on_cpu(tiny: Path, tmp_path: Path):
    from graduation.training.runner import RunSpec, run

    train = [{"prompt": r["prompt"], "completion": r["answer"]} for r in rows("train")[:16]]
    seen = []
    result = run(RunSpec("sft", str(tiny), tmp_path / "out", train, rows("eval")[:8],
                         {"learning_rate": 1e-3, "max_steps": 2, "per_device_train_batch_size": 8, "logging_steps": 1},
                         on_round=seen.append, progress=False))
    assert result.steps == 2
    assert [r.round for r in seen] == [0] and seen[0].step == 2  # SFT: no round 0 on the base by default
    assert any("loss" in entry for entry in result.log_history)


def test_crystallise_keeps_only_verified_answers_with_lineage(tiny: Path):
    from graduation.training.crystallise import crystallise

    prompts = [{"prompt": r["prompt"], "answer": r["answer"], "id": r["id"]} for r in rows("train")[:20]]
    result = crystallise(tiny, prompts, [build(SUM), build(SHAPE)], prompt_field="prompt", answer_field="answer",
                         id_field="id", samples=4, max_new_tokens=4, lineage={"decision_id": "d1",
                                                                            "source": {"job": "j1"}})
    assert result.sampled == 80 and result.verified == 160
    assert 0 < result.kept <= 20  # duplicates of the same right answer are kept once
    for row in result.rows:
        assert float(row["completion"]) == float(row["answer"])  # "-0" is 0: the verifier decides
        lineage = row["lineage"]
        assert lineage["source"]["job"] == "j1" and lineage["source"]["checkpoint"] == str(tiny)
        assert lineage["decision_id"] == "d1"
        assert [(v["name"], v["version"]) for v in lineage["verifiers"]] == [("sum-value", "1"), ("integer-shape", "1")]


def test_toy_data_is_reproducible():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "scripts" / "make_toy_data.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
