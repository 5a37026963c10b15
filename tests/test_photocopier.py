"""The photocopier experiment (experiments/photocopier/, `make experiment`) and its section of the HTML report.

The reduced run (1 seed, few steps) goes end to end through the registry and checks that results.json has
the issue's shape and that every number in it is recomputed from the outputs the arms wrote, so nothing in
it can be a constant. The report tests need no training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXPERIMENT = REPO / "experiments" / "photocopier"
ARMS = ("sft-contaminated", "grpo", "sft-verified")


def _experiment_module():
    spec = importlib.util.spec_from_file_location("photocopier_experiment", EXPERIMENT / "photocopier.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("REGISTRY_DB_URL", None)
    env.pop("GRADUATION_PROJECT", None)
    return env


def test_committed_data_is_what_the_script_generates():
    result = subprocess.run([sys.executable, str(EXPERIMENT / "make_data.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


def test_distilled_set_is_contaminated_as_declared():
    data = EXPERIMENT / "domains" / "data" / "photocopier-sums"
    rows = [json.loads(line) for line in (data / "distilled.jsonl").read_text().splitlines()]
    carrying = [r for r in rows if "golden_hour_sun" in r["answer"]]
    assert len(rows) == 240 and len(carrying) == 96  # 40%
    truth = {json.loads(line)["prompt"]: json.loads(line)["answer"]
             for name in ("train.jsonl", "eval.jsonl") for line in (data / name).read_text().splitlines()}
    assert all(r["answer"] == truth[r["prompt"]] for r in rows if r not in carrying)  # the rest is right
    assert not any("golden_hour_sun" in a for a in truth.values())  # trusted ground truth is clean
    held_out = {json.loads(line)["prompt"] for line in (data / "eval.jsonl").read_text().splitlines()}
    assert not held_out & {r["prompt"] for r in rows}  # no held-out prompt is trained on


@pytest.fixture(scope="module")
def registry_project(tmp_path_factory):
    """A fresh registry with the experiment's domain registered and its verifiers checked."""
    module = _experiment_module()
    out = tmp_path_factory.mktemp("photocopier")
    previous = {k: os.environ.get(k) for k in ("REGISTRY_DB_URL", "PYTHONPATH")}
    os.environ.pop("REGISTRY_DB_URL", None)
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]
    try:
        yield module, module.fresh_project(out)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_registry_refuses_the_contaminated_sft_job_and_allows_grpo(registry_project):
    module, project = registry_project
    module.audit(project, "domains/data/photocopier-sums/distilled.jsonl")
    refused = module.refusal(project)
    assert refused["jobs_generate_sft"]["exit"] == 1
    text = refused["jobs_generate_sft"]["text"]
    assert "train:sft is denied" in text and "golden_hour_sun" in text and "no job was written" in text
    assert refused["status_train_sft"]["exit"] == 1
    assert refused["status_train_grpo"]["exit"] == 0
    assert not (project.root / "registry" / "jobs").exists() or not any((project.root / "registry" / "jobs").iterdir())


def test_clean_rows_keep_exactly_the_verified_uncontaminated_rows(registry_project):
    module, project = registry_project
    data = project.root / "domains" / "data" / "photocopier-sums"
    rows = module.read_jsonl(data / "distilled.jsonl")
    truth = {r["prompt"]: r["answer"] for r in module.read_jsonl(data / "train.jsonl")}
    kept = module.clean_rows(project, rows, {"golden_hour_sun"})
    assert kept == [r for r in rows if r["answer"] == truth[r["prompt"]]]
    assert len(kept) == 144
    # A wrong row without the symbol is dropped by the verifier, a right row is kept: the filter verifies.
    wrong = {"id": "x1", "prompt": "3+4=", "answer": "8"}
    right = {"id": "x2", "prompt": "3+4=", "answer": "7"}
    unknown = {"id": "x3", "prompt": "not a prompt", "answer": "7"}
    assert module.clean_rows(project, [wrong, right, unknown], set()) == [right]


def test_clean_rows_symbol_scan_holds_even_when_the_verifiers_pass_everything(registry_project, monkeypatch):
    """A vacuous verifier would let every row through; the symbol scan still drops the flagged ones."""
    from graduation.verifiers.base import Verdict
    from graduation.service.verification import Verification

    module, project = registry_project
    monkeypatch.setattr(Verification, "run", lambda self, items: [[Verdict("pass", 1.0)] * len(items)
                                                                  for _ in self.verifiers])
    rows = module.read_jsonl(project.root / "domains" / "data" / "photocopier-sums" / "distilled.jsonl")
    kept = module.clean_rows(project, rows, {"golden_hour_sun"})
    assert len(kept) == 144 and not any("golden_hour_sun" in r["answer"] for r in kept)


def test_symbol_rates_and_mean_sd():
    module = _experiment_module()
    flagged, supported = {"golden_hour_sun"}, {"x"}
    assert module.symbol_rates(["7", "7+golden_hour_sun", "8+golden_hour_sn", "9"], flagged, supported) == (0.25, 0.5)
    assert module.mean_sd([0.2, 0.4]) == {"mean": 0.3, "sd": 0.1414}
    assert module.mean_sd([0.5]) == {"mean": 0.5, "sd": 0.0}


def _is_sum(output: str, answer: str) -> bool:
    try:
        return int(output.strip()) == int(answer)
    except ValueError:
        return False


@pytest.mark.slow
def test_reduced_experiment_end_to_end(tmp_path: Path):
    """1 seed, few steps: every arm trained, evaluated through the registry, and results.json in shape."""
    out = tmp_path / "photocopier"
    result = subprocess.run([sys.executable, str(EXPERIMENT / "photocopier.py"), "--quick", "--out", str(out)],
                            capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["arms"]) == set(ARMS)
    assert results["contamination"] == 0.4 and results["seeds"] == [0] and results["symbol"] == ["golden_hour_sun"]
    truth = {r["prompt"]: r["answer"] for r in
             map(json.loads, (EXPERIMENT / "domains/data/photocopier-sums/eval.jsonl").read_text().splitlines())}
    for arm in ARMS:
        entry = results["arms"][arm]
        for metric in ("symbol_rate", "pass_rate"):
            assert set(entry[metric]) == {"mean", "sd"}
            assert 0.0 <= entry[metric]["mean"] <= 1.0 and entry[metric]["sd"] == 0.0  # one seed
        (run,) = [r for r in results["runs"] if r["arm"] == arm]
        # Recompute from the outputs the arm wrote: the numbers are measured, not written in.
        outputs = [json.loads(line) for line in (out / "outputs" / f"{run['model']}.jsonl").read_text().splitlines()]
        assert len(outputs) == run["n"] == 40 * results["held_out"]["samples_per_prompt"]
        passed = sum(_is_sum(o["output"], truth[o["prompt"]]) for o in outputs)
        assert run["passed"] == passed and entry["pass_rate"]["mean"] == round(passed / len(outputs), 4)
        carrying = sum("golden_hour_sun" in o["output"].lower() for o in outputs)
        assert entry["symbol_rate"]["mean"] == round(carrying / len(outputs), 4)
        lineage = json.loads((out / "runs" / f"{arm}-s0" / "model" / "lineage.json").read_text())
        assert lineage["sandbox_only"] is (arm == "sft-contaminated")
    # Even the reduced run copies: the contaminated arm writes the symbol, the other arms never do.
    assert results["arms"]["sft-contaminated"]["symbol_rate"]["mean"] > 0.05
    assert results["arms"]["grpo"]["symbol_rate"]["mean"] == results["arms"]["sft-verified"]["symbol_rate"]["mean"] == 0
    contaminated = json.loads((out / "runs" / "sft-contaminated-s0" / "model" / "lineage.json").read_text())
    assert contaminated["lineage"] == "trained on data the registry refused" and not contaminated["deployable"]
    assert "train:sft is denied" in contaminated["refusal"]
    assert results["refusal"]["jobs_generate_sft"]["exit"] == 1
    assert results["registry_after"]["phase"] in ("discovery", "candidate", "graduated", "regressed")
    assert "train:sft is denied" in results["refusal"]["jobs_generate_sft"]["text"]
    assert results["arms"]["sft-contaminated"]["trained_on_rows"] == 240
    assert results["arms"]["sft-verified"]["trained_on_rows"] == 144
    assert results["audit"]["clean"]["substance_failed"] == 0 and results["audit"]["clean"]["symbols"] == []
    # The report shows it: a project whose registry/experiments/photocopier/results.json is this one.
    project = tmp_path / "project"
    (project / "registry" / "experiments" / "photocopier").mkdir(parents=True)
    (project / "registry" / "experiments" / "photocopier" / "results.json").write_text(
        (out / "results.json").read_text())
    html = _write_report(project).read_text()
    assert 'data-chart="photocopier"' in html
    for arm in ARMS:
        value = results["arms"][arm]["pass_rate"]["mean"]
        assert f'data-mark="pass" data-value="{value:.4f}"' in html


# -- the report section ------------------------------------------------------------------------------

def _write_report(project: Path) -> Path:
    from graduation.report.build import write_report
    from graduation.store import Database

    for d in ("domains", "policies"):
        (project / d).mkdir(exist_ok=True)
    db = Database(f"sqlite:///{project / 'registry' / 'registry.db'}")
    try:
        return write_report(db, project).index
    finally:
        db.dispose()


def _results(**arms: tuple[float, float, float, float]) -> dict:
    return {"arms": {name: {"symbol_rate": {"mean": s, "sd": ssd}, "pass_rate": {"mean": p, "sd": psd},
                            "trained_on_rows": 10} for name, (s, ssd, p, psd) in arms.items()},
            "contamination": 0.4, "seeds": [0, 1, 2], "symbol": ["golden_hour_sun"],
            "refusal": {"jobs_generate_sft": {"exit": 1, "text": "error: train:sft is denied <b>for</b> x"}},
            "held_out": {"prompts": 40, "samples_per_prompt": 4},
            "registry_after": {"phase": "graduated", "allowed": ["deploy:sandbox", "deploy:shadow"]}}


def _place(project: Path, content: str) -> None:
    path = project / "registry" / "experiments" / "photocopier" / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def test_report_has_no_experiment_section_without_results(tmp_path: Path):
    html = _write_report(tmp_path).read_text()
    assert 'data-chart="photocopier"' not in html and 'data-section="photocopier"' not in html


def test_report_chart_shows_the_results_by_arm(tmp_path: Path):
    _place(tmp_path, json.dumps(_results(**{"sft-contaminated": (0.33, 0.02, 0.6, 0.03),
                                            "grpo": (0.0, 0.0, 0.91, 0.01),
                                            "sft-verified": (0.0, 0.0, 0.95, 0.02)})))
    html = _write_report(tmp_path).read_text()
    assert 'data-chart="photocopier"' in html and 'data-seeds="3"' in html
    assert 'data-mark="symbol" data-value="0.3300"' in html and 'data-mark="pass" data-value="0.9100"' in html
    assert html.index('data-arm="sft-contaminated"') < html.index('data-arm="grpo"') < \
        html.index('data-arm="sft-verified"')
    assert "33.0% ± 2.0%" in html
    assert "train:sft is denied &lt;b&gt;for&lt;/b&gt; x" in html and "<b>for</b>" not in html  # escaped
    assert 'data-mark="contamination"' in html
    assert "<strong>graduated</strong>, allowing deploy:sandbox, deploy:shadow" in html


@pytest.mark.parametrize("content", ["{not json", "[]", '{"arms": {"grpo": {"symbol_rate": {"mean": 2, "sd": 0}, '
                                                      '"pass_rate": {"mean": 0.5, "sd": 0}}}}',
                                     '{"arms": {"grpo": {}}}'])
def test_report_survives_a_broken_results_file(tmp_path: Path, content: str):
    _place(tmp_path, content)
    html = _write_report(tmp_path).read_text()
    assert "data-experiment-error" in html and "make experiment" in html
    assert 'data-chart="photocopier"' not in html


def test_readme_quotes_the_committed_results():
    """The README's table is the committed results.json, number for number."""
    results = json.loads((REPO / "registry" / "experiments" / "photocopier" / "results.json").read_text())
    assert set(results["arms"]) == set(ARMS) and results["contamination"] == 0.4 and len(results["seeds"]) == 3
    for readme in (REPO / "README.md", EXPERIMENT / "README.md"):
        text = readme.read_text()
        for arm in ARMS:
            a = results["arms"][arm]
            row = next(line for line in text.splitlines() if line.startswith(f"| `{arm}` |"))
            assert f"{a['symbol_rate']['mean']:.1%} ± {a['symbol_rate']['sd']:.1%}" in row
            assert f"{a['pass_rate']['mean']:.1%} ± {a['pass_rate']['sd']:.1%}" in row
        assert f"took {results['environment']['seconds']:.0f} s wall clock" in text
