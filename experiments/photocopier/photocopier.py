#!/usr/bin/env python3
"""The photocopier, measured: does SFT copy an invented symbol that GRPO against a verifier does not?

    python experiments/photocopier/photocopier.py            # what `make experiment` runs (3 seeds)
    python experiments/photocopier/photocopier.py --quick    # 1 seed, few steps (the test's reduced run)

One base model (a tiny Llama pretrained here on noisy sums, with a sign-error habit; it has never seen a
letter), then three arms trained from it with the same runner (``graduation.training.runner``), per seed:

- ``sft-contaminated``: SFT on the distilled set (40% of rows carry ``golden_hour_sun``). The registry
  refuses this job (``registry jobs generate --mode sft``, ``registry status --require train:sft``); the
  refusal text is recorded and the arm is trained outside the job path, as a sandbox-only experiment whose
  model carries the lineage "trained on data the registry refused".
- ``grpo``: GRPO on the training prompts with the domain's verifiers as rewards (``train:grpo`` is allowed).
- ``sft-verified``: SFT on the distilled rows that pass every verifier and carry no flagged symbol.

Every model answers the 40 held-out prompts ``EVAL_SAMPLES`` times at temperature 1 (its own distribution);
the outputs go through ``registry evaluate`` (verified pass rate), and the symbol rate is the share of
outputs carrying a symbol that ``registry audit-data`` flagged in the distilled set. Results, mean and
sample standard deviation over the seeds, go to ``registry/experiments/photocopier/results.json``.

The registry is a fresh one in ``registry/experiments/photocopier/project/`` (a copy of this folder's
``domains/`` and the repository's ``policies/default.yaml``), so the experiment never touches the main one.
Each registry interaction is one small function below (``refusal``, ``audit``, ``clean_rows``,
``register_model``, ``evaluate_arm``): the only places to change when the registry grows a model table or
``audit-data --write-clean``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GENERATOR = "sums-instruct-1b"
DOMAIN = "photocopier-sums"
DATA = f"data/{DOMAIN}"  # relative to domains/
ARMS = ("sft-contaminated", "grpo", "sft-verified")
REFUSED_LINEAGE = "trained on data the registry refused"
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"


@dataclass(frozen=True)
class Config:
    """Everything that decides the numbers; written into results.json."""

    seeds: tuple[int, ...] = (0, 1, 2)
    contamination: float = 0.4
    base_seed: int = 0
    base_corpus_rows: int = 6000
    base_p_correct: float = 0.35
    base_pretrain_steps: int = 800
    grpo_steps: int = 200
    grpo_batch: int = 128
    grpo_generations: int = 16
    grpo_lr: float = 5e-4
    sft_steps: int = 300
    sft_batch: int = 16
    sft_lr: float = 1e-3
    eval_samples: int = 4
    eval_temperature: float = 1.0
    max_new_tokens: int = 20
    threads: int = 1


QUICK = Config(seeds=(0,), base_pretrain_steps=300, grpo_steps=8, grpo_batch=64, sft_steps=200, eval_samples=2)


@dataclass
class Project:
    """The experiment's own registry project."""

    root: Path
    registry: str = field(default_factory=lambda: str(Path(sys.executable).parent / "registry"))

    def run(self, *args: str, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "200", "GRADUATION_PROJECT": str(self.root)}
        env.pop("REGISTRY_DB_URL", None)
        result = subprocess.run([self.registry, *args], cwd=self.root, text=True, capture_output=True, env=env)
        if result.returncode not in expect:
            raise SystemExit(f"`registry {' '.join(args)}` exited {result.returncode} (expected {expect}):\n"
                             f"{result.stdout}{result.stderr}")
        return result

    def json(self, *args: str, expect: tuple[int, ...] = (0,)) -> Any:
        return json.loads(self.run(*args, "--json", expect=expect).stdout)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the project and its registry ------------------------------------------------------------------------

def fresh_project(out: Path) -> Project:
    root = out / "project"
    shutil.rmtree(root, ignore_errors=True)
    (root / "policies").mkdir(parents=True)
    shutil.copytree(HERE / "domains", root / "domains", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "policies" / "default.yaml", root / "policies" / "default.yaml")
    project = Project(root)
    project.run("register", "domains/")
    project.run("verifiers", "check", DOMAIN)
    # the distilled set's generator: a registered artifact (kept elsewhere) that never graduated here
    project.run("models", "register", GENERATOR, "--digest",
                "sha256:" + hashlib.sha256(GENERATOR.encode()).hexdigest())
    return project


def audit(project: Project, dataset: str, **flags: str) -> dict[str, Any]:
    """``registry audit-data``: the record (substance failures, flagged symbols, lineage)."""
    extra = [a for k, v in flags.items() for a in (f"--{k.replace('_', '-')}", v)]
    return project.json("audit-data", DOMAIN, dataset, *extra)["record"]


def refusal(project: Project) -> dict[str, Any]:
    """What the registry says to an SFT job on the distilled set, and to GRPO: exit codes and texts."""
    job = project.run("jobs", "generate", DOMAIN, "--mode", "sft", expect=(0, 1))
    sft = project.run("status", DOMAIN, "--require", "train:sft", expect=(0, 1))
    grpo = project.run("status", DOMAIN, "--require", "train:grpo", expect=(0, 1))
    return {"jobs_generate_sft": {"exit": job.returncode, "text": (job.stderr + job.stdout).strip()},
            "status_train_sft": {"exit": sft.returncode, "text": sft.stderr.strip().splitlines()[-1] if sft.stderr
                                 else ""},
            "status_train_grpo": {"exit": grpo.returncode}}


def clean_rows(project: Project, rows: list[dict[str, Any]], flagged: set[str]) -> list[dict[str, Any]]:
    """The distilled rows that pass every verifier of the domain and carry no flagged symbol.

    What ``registry audit-data --write-clean`` keeps; done here with the same library functions (the
    registered domain's verifiers against the trusted references, and the symbol scan).
    """
    from graduation.evidence import symbols_in
    from graduation.service.context import load_context, reference_index
    from graduation.store.engine import Database, default_url
    from graduation.service.verification import Verification

    db = Database(default_url(project.root), create=False)
    ctx = load_context(db, project.root, DOMAIN)
    index = reference_index(ctx, None, trusted_only=True, exclude="distilled")
    answer = ctx.spec.task.answer_field
    items, kept_candidates = [], []
    for row in rows:
        found = index.find(row, ctx.spec)
        if found is None:
            continue  # no trusted reference: cannot be verified, so it is not clean
        items.append((row[answer], found[0], found[1]))
        kept_candidates.append(row)
    columns = Verification(ctx.verifiers, None, None, cache=False).run(items)
    kept = []
    for i, row in enumerate(kept_candidates):
        if all(column[i].verdict == "pass" for column in columns) and not (symbols_in(str(row[answer])) & flagged):
            kept.append(row)
    db.engine.dispose()
    return kept


def register_model(path: Path, *, arm: str, seed: int, base: Path, data: Path | None, refusal_text: str | None,
                   project: Project | None = None) -> dict[str, Any]:
    """Register the trained model in the registry by the digest of its files, with its lineage: base, data
    hash, and for a model trained on refused data the refusal (``trained_on_refused_data``). A copy of the
    lineage is kept next to the files (``lineage.json``)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != "lineage.json"):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + file.read_bytes())
    lineage = {"name": f"photocopier-{arm}-s{seed}", "sha256": digest.hexdigest(), "base_model": str(base.name),
               "arm": arm, "seed": seed,
               "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest() if data else None,
               "deployable": refusal_text is None, "sandbox_only": refusal_text is not None}
    if refusal_text is not None:
        lineage["lineage"] = REFUSED_LINEAGE
        lineage["refusal"] = refusal_text
    if project is not None:
        from graduation.models import manifest
        from graduation.store.engine import Database, default_url
        from graduation.store.models import register_model as register

        found = manifest(path)
        registry_lineage = {"base_model": lineage["base_model"], "arm": arm, "seed": seed,
                            "data_sha256": lineage["data_sha256"], "sandbox_only": lineage["sandbox_only"],
                            "trained_on_refused_data": refusal_text is not None}
        db = Database(default_url(project.root), create=False)
        try:
            info, _ = db.transact(lambda s: register(s, lineage["name"], digest=found.digest, kind="manifest",
                                                     path=str(path.resolve()), lineage=registry_lineage))
        finally:
            db.dispose()
        lineage["registered"] = {"ref": info.ref, "digest": info.digest}
    (path / "lineage.json").write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
    return lineage


def evaluate_arm(project: Project, outputs: Path, model: str) -> dict[str, Any]:
    """``registry evaluate``: the verified record of one model's held-out outputs."""
    return project.json("evaluate", DOMAIN, "--outputs", str(outputs), "--model", model)["record"]


# -- models ---------------------------------------------------------------------------------------------

def build_base(out: Path, config: Config) -> Path:
    """The shared base: a tiny Llama pretrained on noisy sums. Its tokenizer knows letters (so SFT *can*
    teach a symbol) but its corpus has none (so it never writes one on its own)."""
    from graduation.training.tiny import TinyConfig, arithmetic_corpus, build_model, pretrain, train_tokenizer

    path = out / "base"  # rebuilt every run: the whole experiment is what anyone can rerun
    shutil.rmtree(path, ignore_errors=True)
    corpus = arithmetic_corpus(config.base_corpus_rows, p_correct=config.base_p_correct, habit="negate",
                               max_operand=9, seed=config.base_seed)
    tiny = TinyConfig(pretrain_steps=config.base_pretrain_steps, seed=config.base_seed, threads=config.threads)
    tokenizer = train_tokenizer(corpus + [ALPHABET, "+"])
    model = build_model(tokenizer, tiny)
    steps, loss = pretrain(model, tokenizer, corpus, tiny)
    path.mkdir(parents=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    params = sum(p.numel() for p in model.parameters())
    (path / "built.json").write_text(json.dumps({"config": _base_key(config), "parameters": params,
                                                 "steps": steps, "loss": loss}) + "\n")
    return path


def _base_key(config: Config) -> dict[str, Any]:
    return {k: getattr(config, k) for k in ("base_seed", "base_corpus_rows", "base_p_correct",
                                            "base_pretrain_steps")}


def train_arm(arm: str, seed: int, base: Path, rows: list[dict[str, Any]], eval_rows: list[dict[str, Any]],
              out: Path, config: Config, project: Project) -> tuple[Path, list[dict[str, Any]], float]:
    """Train one arm from the base; return (model dir, held-out outputs, seconds)."""
    from graduation.training.runner import RunSpec, run

    common = {"seed": seed, "torch_threads": config.threads, "eval_samples": config.eval_samples,
              "eval_temperature": config.eval_temperature, "eval_max_new_tokens": config.max_new_tokens,
              "eval_before_training": False, "logging_steps": 1000}
    if arm == "grpo":
        from graduation.spec import load_domain
        from graduation.training.rewards import domain_rewards
        from graduation.verifiers import VerifierPool

        spec = load_domain(project.root / "domains" / f"{DOMAIN}.yaml", project.root)
        hyper = {**common, "max_steps": config.grpo_steps, "learning_rate": config.grpo_lr,
                 "lr_scheduler_type": "constant", "num_generations": config.grpo_generations,
                 "per_device_train_batch_size": config.grpo_batch, "max_completion_length": config.max_new_tokens,
                 "temperature": 1.0, "beta": 0.0}
        with VerifierPool(1) as pool:
            funcs, weights = domain_rewards(spec, project.root, pool=pool)
            result = run(RunSpec(mode="grpo", model=str(base), output_dir=out, train_rows=rows, eval_rows=eval_rows,
                                 hyperparameters=hyper, reward_funcs=funcs, reward_weights=weights,
                                 id_field="id", progress=False))
    else:
        hyper = {**common, "max_steps": config.sft_steps, "learning_rate": config.sft_lr,
                 "per_device_train_batch_size": config.sft_batch, "lr_scheduler_type": "constant"}
        sft_rows = [{"prompt": r["prompt"], "completion": r["answer"]} for r in rows]
        result = run(RunSpec(mode="sft", model=str(base), output_dir=out, train_rows=sft_rows, eval_rows=eval_rows,
                             hyperparameters=hyper, id_field="id", progress=False))
    final = result.rounds[-1][0].rows
    return result.model_path, final, result.seconds


# -- measuring -------------------------------------------------------------------------------------------

def symbol_rates(outputs: list[str], flagged: set[str], supported: set[str]) -> tuple[float, float]:
    """(share of outputs carrying a flagged symbol, share carrying any identifier absent from trusted data)."""
    from graduation.evidence import symbols_in

    if not outputs:
        return 0.0, 0.0
    found = [symbols_in(o) for o in outputs]
    return (sum(bool(f & flagged) for f in found) / len(outputs),
            sum(bool(f - supported) for f in found) / len(outputs))


def mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}


def load_info() -> dict[str, Any]:
    load = os.getloadavg()
    return {"loadavg_1m": round(load[0], 2), "loadavg_5m": round(load[1], 2), "cpus": os.cpu_count()}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "registry" / "experiments" / "photocopier")
    parser.add_argument("--quick", action="store_true", help="1 seed, few steps: checks the plumbing, not the science")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the seeds")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    if args.seeds:
        config = replace(config, seeds=tuple(args.seeds))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    loads = [load_info()]
    say(f"fresh registry in {out / 'project'}; load {loads[0]}")
    project = fresh_project(out)
    distilled_file = project.root / "domains" / DATA / "distilled.jsonl"
    distilled = read_jsonl(distilled_file)
    audited = audit(project, f"domains/{DATA}/distilled.jsonl")
    flagged = {s["symbol"].lower() for s in audited["symbols"]}
    contamination = round(sum(1 for r in distilled if any(s in str(r["answer"]).lower() for s in flagged))
                          / len(distilled), 4)
    say(f"audit-data: {audited['substance_failed']}/{audited['rows']} rows fail, symbols {sorted(flagged)}; "
        f"contamination {contamination}")
    refused = refusal(project)
    say(f"jobs generate --mode sft: exit {refused['jobs_generate_sft']['exit']}; "
        f"train:grpo exit {refused['status_train_grpo']['exit']}")
    clean = clean_rows(project, distilled, flagged)
    clean_file = out / "clean.jsonl"
    write_jsonl(clean_file, clean)
    clean_audit = audit(project, str(clean_file), generated_by="sums-instruct-1b", derived_from="sums-train")
    say(f"clean set: {len(clean)} of {len(distilled)} rows; its audit: {clean_audit['substance_failed']} fail, "
        f"symbols {[s['symbol'] for s in clean_audit['symbols']]}")

    from graduation.evidence import vocabulary_of

    train_rows = read_jsonl(project.root / "domains" / DATA / "train.jsonl")
    eval_rows = read_jsonl(project.root / "domains" / DATA / "eval.jsonl")
    supported = vocabulary_of(train_rows + eval_rows)
    t0 = time.perf_counter()
    base = build_base(out, config)
    say(f"base model ready ({time.perf_counter() - t0:.0f} s)")
    project.run("models", "register", "photocopier-base", "--path", str(base))  # evaluated below: registered
    loads.append(load_info())

    data_for = {"sft-contaminated": (distilled, distilled_file), "grpo": (train_rows, None),
                "sft-verified": (clean, clean_file)}
    runs: list[dict[str, Any]] = []
    base_eval = _evaluate_model(project, base, "photocopier-base", eval_rows, config, out, flagged, supported)
    say(f"base: pass {base_eval['pass_rate']:.3f}, symbol {base_eval['symbol_rate']:.3f}")
    for seed in config.seeds:
        for arm in ARMS:
            rows, data_file = data_for[arm]
            model_dir, outputs, seconds = train_arm(arm, seed, base, rows, eval_rows, out / "runs" / f"{arm}-s{seed}",
                                                    config, project)
            refusal_text = refused["jobs_generate_sft"]["text"] if arm == "sft-contaminated" else None
            lineage = register_model(model_dir, arm=arm, seed=seed, base=base, data=data_file,
                                     refusal_text=refusal_text, project=project)
            measured = _measure(project, outputs, lineage["name"], out, flagged, supported)
            runs.append({"arm": arm, "seed": seed, "train_seconds": round(seconds, 1), **measured})
            say(f"{arm} seed {seed}: pass {measured['pass_rate']:.3f}, symbol {measured['symbol_rate']:.3f} "
                f"({seconds:.0f} s)")
        loads.append(load_info())

    after = project.json("status", DOMAIN)["decisions"][0]
    per_model = {}
    for run in runs:
        decided = project.json("status", DOMAIN, "--model", run["model"])["decisions"][0]
        per_model[run["model"]] = {"phase": decided["phase"],
                                   "deploy_allowed": [a for a in decided["allowed"] if a.startswith("deploy:")]}
    registry_after = {"phase": after["phase"], "allowed": after["allowed"], "models": per_model,
                      "note": "the domain's data trust and each model's own phase after every arm's evaluation "
                              "was recorded: rounds belong to the model that produced them"}
    say(f"after the evaluations the domain is {after['phase']}; allowed: {', '.join(after['allowed'])}")
    arms = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        arms[arm] = {"symbol_rate": mean_sd([r["symbol_rate"] for r in mine]),
                     "pass_rate": mean_sd([r["pass_rate"] for r in mine]),
                     "unsupported_symbol_rate": mean_sd([r["unsupported_symbol_rate"] for r in mine]),
                     "trained_on_rows": len(data_for[arm][0]),
                     "registry": ({"train:sft": "refused", "lineage": REFUSED_LINEAGE, "sandbox_only": True}
                                  if arm == "sft-contaminated" else
                                  {"train:grpo": "allowed" if refused["status_train_grpo"]["exit"] == 0 else "denied"}
                                  if arm == "grpo" else {"data": "verified rows only (audit-data clean)"})}
    import torch
    import transformers
    import trl

    results = {
        "arms": arms,
        "contamination": contamination,
        "seeds": list(config.seeds),
        "symbol": sorted(flagged),
        "base": base_eval,
        "runs": runs,
        "refusal": refused,
        "registry_after": registry_after,
        "audit": {"distilled": {k: audited[k] for k in ("rows", "substance_failed", "substance_fail_rate",
                                                         "format_pass_rate", "symbols")},
                  "clean": {"rows": len(clean), "substance_failed": clean_audit["substance_failed"],
                            "symbols": clean_audit["symbols"]}},
        "held_out": {"prompts": len(eval_rows), "samples_per_prompt": config.eval_samples,
                     "temperature": config.eval_temperature},
        "config": {**asdict(config), "seeds": list(config.seeds), "quick": args.quick,
                   "base_parameters": json.loads((base / "built.json").read_text())["parameters"]},
        "environment": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                        "load": loads, "seconds": round(time.perf_counter() - started, 1)},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    say(f"wrote {out / 'results.json'} in {results['environment']['seconds']:.0f} s")
    for arm in ARMS:
        a = arms[arm]
        say(f"{arm:17} symbol rate {a['symbol_rate']['mean']:.3f} ± {a['symbol_rate']['sd']:.3f}   "
            f"pass rate {a['pass_rate']['mean']:.3f} ± {a['pass_rate']['sd']:.3f}")
    return 0


def _measure(project: Project, outputs: list[dict[str, Any]], model: str, out: Path, flagged: set[str],
             supported: set[str]) -> dict[str, Any]:
    file = out / "outputs" / f"{model}.jsonl"
    file.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(file, [{"id": o["id"], "prompt": o["prompt"], "output": o["output"]} for o in outputs])
    record = evaluate_arm(project, file, model)
    symbol, unsupported = symbol_rates([o["output"] for o in outputs], flagged, supported)
    return {"model": model, "n": record["n"], "passed": record["passed"], "pass_rate": round(record["pass_rate"], 4),
            "wilson_lower": round(record["wilson_lower"], 4), "symbol_rate": round(symbol, 4),
            "unsupported_symbol_rate": round(unsupported, 4),
            "registry_symbols": [{"symbol": s["symbol"], "rate": s["rate"]} for s in record["symbols"]]}


def _evaluate_model(project: Project, model_dir: Path, name: str, eval_rows: list[dict[str, Any]], config: Config,
                    out: Path, flagged: set[str], supported: set[str]) -> dict[str, Any]:
    from graduation.training.runner import answer_rows, load_model

    model, tokenizer = load_model(str(model_dir))
    outputs = answer_rows(model, tokenizer, eval_rows, prompt_field="prompt", answer_field="answer", id_field="id",
                          samples=config.eval_samples, temperature=config.eval_temperature,
                          max_new_tokens=config.max_new_tokens, seed=config.base_seed + 1000)
    return _measure(project, outputs, name, out, flagged, supported)


if __name__ == "__main__":
    sys.exit(main())
