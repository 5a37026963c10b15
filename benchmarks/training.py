"""GRPO with verifier-backed rewards vs a plain Python reward; crystallisation throughput.

    python benchmarks/training.py [--steps 20] [--repeats 2]

1. Reward overhead. The same tiny model, data, seed and hyperparameters train twice per repeat, alternating:
   (a) rewards from the toy domain's verifiers through the verifier pool, (a') the same with every check in a
   worker process (``isolate_all``), (b) plain Python functions that give the same scores. Identical scores mean identical trajectories, so the step times compare like for like. Printed:
   median step time of each and their ratio (target <= 1.05). The scores are checked to be equal.
2. Crystallisation: sample 8 answers per training prompt from the model, verify them with every verifier,
   keep the passes. Printed: verified completions per second (sampling included) and verification alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rows(split: str) -> list[dict]:
    path = REPO / "domains" / "data" / "toy-arithmetic" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def plain_rewards():
    shape = re.compile(r"-?[0-9]+")

    def substance_plain(prompts, completions, answer, **kw):
        out = []
        for c, a in zip(completions, answer):
            try:
                out.append(1.0 if float(c.strip()) == float(a) else 0.0)
            except ValueError:
                out.append(0.0)
        return out

    def format_plain(prompts, completions, **kw):
        return [1.0 if shape.fullmatch(c.strip()) else 0.0 for c in completions]

    return [substance_plain, format_plain]


def timed_run(model: str, funcs, weights, steps: int, out: Path, scores: list) -> list[float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model)
    tok.padding_side = "left"
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)

    def recording(func):
        def wrapped(prompts, completions, **kw):
            result = func(prompts, completions, **kw)
            scores.append(list(result))
            return result

        wrapped.__name__ = getattr(func, "__name__", "reward")
        return wrapped

    config = GRPOConfig(output_dir=str(out), learning_rate=5e-4, num_generations=16, per_device_train_batch_size=128,
                        max_completion_length=4, beta=0.0, max_steps=steps, seed=0, use_cpu=True, bf16=False,
                        gradient_checkpointing=False, report_to="none", save_strategy="no", disable_tqdm=True,
                        logging_steps=steps, reward_weights=weights, lr_scheduler_type="constant")
    dataset = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in rows("train")])
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model), reward_funcs=[recording(f) for f in funcs],
                          args=config, train_dataset=dataset, processing_class=tok, callbacks=[Clock()])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return times[2:]  # the first steps warm up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from graduation.spec import load_domain
    from graduation.training.models import resolve_model
    from graduation.training.rewards import domain_rewards
    from graduation.training.crystallise import crystallise
    from graduation.verifiers import VerifierPool, build

    torch.set_num_threads(1)  # the tiny model is fastest on one thread; the pool worker gets the other core
    spec = load_domain(REPO / "domains" / "toy-arithmetic.yaml", REPO)
    with tempfile.TemporaryDirectory() as tmp:
        model = resolve_model("tiny:arithmetic", Path(tmp))
        times: dict[str, list[float]] = {"pool": [], "isolate_all": [], "plain": []}
        with VerifierPool(workers=1) as pool, VerifierPool(workers=1, isolate_all=True, batch_size=512) as strict:
            variants = {"pool": domain_rewards(spec, REPO, pool=pool), "isolate_all": domain_rewards(spec, REPO, pool=strict),
                        "plain": (plain_rewards(), None)}
            for i in range(args.repeats):
                scores: dict[str, list] = {}
                for name, (funcs, weights) in variants.items():
                    scores[name] = []
                    times[name] += timed_run(model, funcs, weights or variants["pool"][1], args.steps,
                                             Path(tmp) / f"{name}{i}", scores[name])
                if not scores["pool"] == scores["isolate_all"] == scores["plain"]:
                    print("the plain reward gave different scores than the verifiers; the comparison is void",
                          file=sys.stderr)
                    return 1
        v, s, p = (statistics.median(times[k]) for k in ("pool", "isolate_all", "plain"))

        verifiers = [build(s, REPO) for s in spec.verifiers]
        prompts = [{"prompt": r["prompt"], "answer": r["answer"], "id": r["id"]} for r in rows("train")]
        with VerifierPool(workers=1, isolate_all=True) as pool:
            result = crystallise(model, prompts, verifiers, prompt_field="prompt", answer_field="answer",
                                 id_field="id", samples=8, max_new_tokens=4, pool=pool)
    assert result.sampled == 8 * len(prompts) and result.kept <= result.sampled, (result.sampled, result.kept)
    assert result.verified == result.sampled * len(verifiers), result.verified  # every sample, every verifier
    report("GRPO step time, tiny model on CPU (median over steps; same model, data, seed and scores)", [
        ("verifier rewards, pool (bounded kinds in-process)", f"{v * 1000:.1f} ms/step ({len(times['pool'])} steps)"),
        ("verifier rewards, pool with isolate_all", f"{s * 1000:.1f} ms/step ({len(times['isolate_all'])} steps)"),
        ("plain Python rewards", f"{p * 1000:.1f} ms/step ({len(times['plain'])} steps)"),
        ("ratio pool / plain", f"{v / p:.3f}  (target <= 1.05)"),
        ("ratio isolate_all / plain", f"{s / p:.3f}"),
    ])
    report("Crystallisation (8 samples per training prompt, every verifier, isolated pool)", [
        ("completions sampled", str(result.sampled)),
        ("kept (verified, deduplicated)", str(result.kept)),
        ("verified completions/s, sampling included", f"{result.sampled / result.seconds:,.0f}"),
        ("verifications/s, verification alone", f"{result.verified / result.verify_seconds:,.0f}"),
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
