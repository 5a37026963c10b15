"""GRPO reward functions built from a domain's verifiers: one function per verifier.

    funcs, weights = reward_functions(verifiers, format_weight=0.1, pool=pool)
    GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(..., reward_weights=weights))

Each verifier becomes its own reward function with its own name (``substance.<name>`` or
``format.<name>``), so TRL logs ``rewards/<role>.<name>/mean`` for every verifier separately and a
format reward can never hide a correctness failure in one blended number. Substance verifiers are the
reward (weight: the verifier's ``weight``); format verifiers count with the domain's
``format_reward_weight`` times their own weight. The weights are checked so that all format rewards
together stay below the smallest substance weight: a well-formed wrong answer always scores less than
a correct one.

A reward function verifies its whole batch of completions at once: cheap kinds in this process,
isolated kinds through the verifier pool (one pool for the whole run). A verdict's score counts only
when it is a pass; ``fail`` and ``error`` give 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graduation.verifiers import Verdict, Verifier, VerifierPool

RewardFunc = Callable[..., list[float]]
Verify = Callable[[Verifier, list[tuple[Any, Any, Mapping[str, Any] | None]]], list[Verdict]]


def completion_text(completion: Any) -> str:
    """A completion as text: plain strings as they are; chat completions: the last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else str(content)
    return "" if completion is None else str(completion)


def reward_name(verifier: Verifier) -> str:
    return f"{verifier.role}.{verifier.name}"


def python_identifier(name: str) -> str:
    """``substance.sum-correct`` -> ``substance_sum_correct`` (for reward functions named in a module)."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if not ident[:1].isdigit() else "_" + ident


class SharedVerification:
    """One pool round-trip per batch for all verifiers: the first reward function of a batch verifies the
    completions with every verifier (``pool.verify_many``); the others read their column from it."""

    def __init__(self, verifiers: Sequence[Verifier], pool: VerifierPool) -> None:
        self.verifiers = list(verifiers)
        self.pool = pool
        self._key: tuple | None = None
        self._columns: dict[str, list[Verdict]] = {}

    def verify(self, verifier: Verifier, items: list[tuple[Any, Any, Mapping[str, Any] | None]]) -> list[Verdict]:
        key = tuple((out, str(ref)) for out, ref, _row in items)
        if key != self._key or verifier.name not in self._columns:
            jobs = [(v, item) for v in self.verifiers for item in items]
            verdicts = self.pool.verify_many(jobs)
            n = len(items)
            self._columns = {v.name: verdicts[i * n:(i + 1) * n] for i, v in enumerate(self.verifiers)}
            self._key = key
        return self._columns[verifier.name]


@dataclass
class VerifierReward:
    """A reward function: verifies a batch of completions with one verifier, returns one score each."""

    verifier: Verifier
    answer_field: str = "answer"
    verify: Verify | None = None
    calls: int = 0
    items: int = 0
    last_verdicts: list[Verdict] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.__name__ = reward_name(self.verifier)
        self.__qualname__ = self.__name__

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        references = kwargs.get(self.answer_field)
        if references is None:
            raise KeyError(f"reward {self.__name__}: the dataset has no {self.answer_field!r} column (the reference "
                           f"answer); columns passed: {sorted(k for k in kwargs if not k.startswith(('trainer_', 'log_')))}")
        extra = {k: v for k, v in kwargs.items() if isinstance(v, list) and len(v) == len(completions)
                 and k not in ("completion_ids",)}
        items = []
        for i, completion in enumerate(completions):
            row = {k: v[i] for k, v in extra.items()}
            row.setdefault("prompt", prompts[i] if isinstance(prompts[i], str) else str(prompts[i]))
            items.append((completion_text(completion), references[i], row))
        verdicts = self._verify(items)
        self.calls += 1
        self.items += len(items)
        self.last_verdicts = verdicts
        return [float(v.score) if v.verdict == "pass" else 0.0 for v in verdicts]

    def _verify(self, items: list[tuple[Any, Any, Mapping[str, Any] | None]]) -> list[Verdict]:
        if self.verify is not None:
            return self.verify(self.verifier, items)
        from graduation.verifiers import verify_items

        return verify_items(self.verifier, items)


def reward_functions(verifiers: Sequence[Verifier], *, format_weight: float, answer_field: str = "answer",
                     pool: VerifierPool | None = None, verifier_weights: Mapping[str, float] | None = None
                     ) -> tuple[list[VerifierReward], list[float]]:
    """One reward function per verifier, substance first, and their weights (for ``reward_weights``).

    ``verifier_weights``: each verifier's own weight by name (the domain's ``verifiers[].weight``; 1 if absent).
    """
    own = dict(verifier_weights or {})
    substance = [v for v in verifiers if v.role == "substance"]
    formats = [v for v in verifiers if v.role == "format"]
    if not substance:
        raise ValueError("no substance verifier: GRPO needs a reward that measures correctness; declare a verifier "
                         "with role: substance")
    verify: Verify | None = None
    if pool is not None:
        verify = SharedVerification(substance + formats, pool).verify
    funcs = [VerifierReward(v, answer_field, verify) for v in substance + formats]
    weights = [float(own.get(v.name, 1.0)) for v in substance] + \
        [float(format_weight) * float(own.get(v.name, 1.0)) for v in formats]
    check_weights(funcs, weights)
    return funcs, weights


def domain_rewards(spec: Any, root: Any, *, pool: VerifierPool | None = None
                   ) -> tuple[list[VerifierReward], list[float]]:
    """The reward functions of a ``DomainSpec``: its verifiers built, weighted as the domain declares."""
    from graduation.verifiers import build

    verifiers = [build(v, root) for v in spec.verifiers]
    return reward_functions(verifiers, format_weight=spec.training.format_reward_weight,
                            answer_field=spec.task.answer_field, pool=pool,
                            verifier_weights={v.name: v.weight for v in spec.verifiers})


def check_weights(funcs: Sequence[VerifierReward], weights: Sequence[float]) -> None:
    """Format rewards together must weigh less than the lightest substance reward."""
    substance = [w for f, w in zip(funcs, weights) if f.verifier.role == "substance"]
    formats = [w for f, w in zip(funcs, weights) if f.verifier.role == "format"]
    if min(substance) <= 0:
        raise ValueError("a substance verifier has weight 0: it would not reward correctness; give it weight > 0")
    if sum(formats) >= min(substance):
        raise ValueError(f"format rewards weigh {sum(formats):g} in total, not less than the lightest substance "
                         f"reward ({min(substance):g}): a well-formed wrong answer could score like a correct one; "
                         "lower training.format_reward_weight or the format verifiers' weight")


def job_rewards(job_dir: Any) -> dict[str, VerifierReward]:
    """The reward functions of a generated GRPO job, by the function names its recipe lists.

    Reads ``job.yaml`` (the resolved domain spec); the verifiers are built from the bundle's own copy of the
    domain's files (``project/``), wherever the directory is; isolated verifier kinds share one pool for the
    life of the process.
    """
    import atexit
    from pathlib import Path

    from graduation.jobs.model import read_job_file
    from graduation.spec import DomainSpec

    job = read_job_file(Path(job_dir) / "job.yaml")
    spec = DomainSpec.model_validate(job.domain.spec)
    pool = None
    if any(_isolated(v.kind) for v in spec.verifiers):
        pool = VerifierPool()
        atexit.register(pool.close)
    files_root = Path(job.project_root) if job.project_root else Path(job_dir).resolve() / job.project
    funcs, _weights = domain_rewards(spec, files_root, pool=pool)
    by_name = {python_identifier(f.__name__): f for f in funcs}
    wanted = [r.function for r in job.rewards]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise ValueError(f"{Path(job_dir) / 'job.yaml'}: rewards {missing} do not match the domain's verifiers "
                         f"({sorted(by_name)}); regenerate the job")
    return by_name


def _isolated(kind: str) -> bool:
    from graduation.verifiers import get_kind

    return get_kind(kind).isolated


__all__ = ["RewardFunc", "SharedVerification", "VerifierReward", "check_weights", "completion_text", "domain_rewards", "job_rewards", "python_identifier", "reward_functions",
           "reward_name"]
