"""The evidence commands: evaluate, audit-data, verifiers check, evidence add/list, exit codes, --json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_gather import PHOTO, manual_rows, write


def setup_photo(project: Path, cli) -> None:
    data = project / "domains" / "data" / "photo"
    rows = manual_rows(50)
    write(data / "manual.jsonl", rows)
    write(data / "distilled.jsonl", [{**r, "id": f"d{i}", "answer": r["answer"] + (" golden_hour_sun" if i % 5 < 2
                                                                                    else "")}
                                     for i, r in enumerate(rows)])
    write(data / "wrong.jsonl", [{"id": "p1", "output": "exposure = 3, aperture = 3"}])
    (project / "domains" / "photo.yaml").write_text(PHOTO)
    assert cli("register", str(project / "domains")).exit_code == 0


def test_audit_data_json_and_table(project, cli):
    setup_photo(project, cli)
    result = cli("audit-data", "photo", str(project / "domains/data/photo/distilled.jsonl"), "--json",
                 "--timeout", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    symbols = data["record"]["symbols"]
    assert symbols[0]["symbol"] == "golden_hour_sun" and abs(symbols[0]["rate"] - 0.4) <= 0.01
    assert data["validation_ran"] is True and len(data["evidence"]) == 2
    table = cli("audit-data", "photo", str(project / "domains/data/photo/distilled.jsonl"))
    assert table.exit_code == 0 and "golden_hour_sun" in table.stdout and "40.0%" in table.stdout


def test_evaluate_then_list_evidence(project, cli, tmp_path):
    setup_photo(project, cli)
    outputs = write(tmp_path / "out.jsonl", [{"id": r["id"], "output": r["answer"]} for r in manual_rows(8)][:7]
                    + [{"id": "p7", "output": "exposure = 1, aperture = 1"}])
    unknown = cli("evaluate", "photo", "--outputs", str(outputs), "--model", "m1", "--json")
    assert unknown.exit_code == 2 and "registry models register" in unknown.stderr
    assert cli("models", "register", "m1", "--digest", "sha256:" + "1" * 64).exit_code == 0
    result = cli("evaluate", "photo", "--outputs", str(outputs), "--model", "m1", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert (record["n"], record["passed"]) == (8, 7) and abs(record["wilson_lower"] - 0.529) < 0.001
    listed = json.loads(cli("evidence", "photo", "--json").stdout)
    assert [e["kind"] for e in listed["evidence"]] == ["verifier_validation", "eval"]
    only = json.loads(cli("evidence", "list", "photo", "--kind", "eval", "--json").stdout)
    assert [e["model"] for e in only["evidence"]] == ["m1@1"]
    assert [e["round"] for e in only["evidence"]] == [1]  # assigned by the registry
    text = cli("evidence", "photo")
    assert text.exit_code == 0 and "7/8 pass" in text.stdout


def test_bad_inputs_exit_2_and_write_nothing(project, cli, tmp_path):
    setup_photo(project, cli)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "p1", "output": "x"}\nnot json\n')
    assert cli("models", "register", "m", "--digest", "sha256:" + "2" * 64).exit_code == 0
    result = cli("evaluate", "photo", "--outputs", str(bad), "--model", "m")
    assert result.exit_code == 2 and "bad.jsonl:2" in result.stderr
    assert cli("evaluate", "nope", "--outputs", str(bad), "--model", "m").exit_code == 2
    assert cli("evaluate", "photo", "--outputs", str(tmp_path / "missing.jsonl"), "--model", "m").exit_code == 2
    assert cli("evidence", "list", "photo", "--kind", "bogus").exit_code == 2
    assert json.loads(cli("evidence", "photo", "--json").stdout)["evidence"] == []


def test_verifiers_check_exit_code(project, cli):
    setup_photo(project, cli)
    result = cli("verifiers", "check", "photo", "--json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["record"]["verifiers"]
    assert all(c["trustworthy"] for c in checks)


def test_human_audit_with_items_reports_agreement_and_signoff(project, cli, tmp_path):
    setup_photo(project, cli)
    items = write(tmp_path / "items.jsonl", [
        {"id": "p1", "verdict": "pass", "output": "exposure = 2, aperture = 3"},   # verifier: pass
        {"id": "p2", "verdict": "pass", "output": "exposure = 9, aperture = 9"},   # verifier: fail
        {"id": "p3", "verdict": "fail", "output": "exposure = 1, aperture = 1"},   # verifier: fail
        {"id": "x9", "verdict": "fail", "verifier_verdict": "fail"},
    ])
    from tests.test_signoffs import keygen

    keys = {p: keygen(tmp_path / p.split("@")[0], p) for p in ("ada@example.org", "grace@example.org")}
    (project / "policies" / "allowed_signers").write_text("".join(
        f"{p} {k.with_suffix('.pub').read_text()}" for p, k in keys.items()))
    # high risk: an unsigned audit is refused; the auditor signs the items and verdicts
    assert cli("evidence", "add", "photo", "--kind", "human_audit", "--by", "ada@example.org",
               "--items", str(items)).exit_code == 1
    result = cli("evidence", "add", "photo", "--kind", "human_audit", "--by", "ada@example.org",
                 "--items", str(items), "--key", str(keys["ada@example.org"]), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert (summary["checked"], summary["held"], summary["agreement"]) == (4, 2, 0.75)
    assert summary["signed"]["payload"]["items"][1] == {"id": "p2", "verdict": "pass"}
    sign = cli("evidence", "add", "photo", "--kind", "signoff", "--by", "grace@example.org", "--role", "lead",
               "--key", str(keys["grace@example.org"]), "--json")
    assert sign.exit_code == 0 and json.loads(sign.stdout)["summary"]["by"] == "grace@example.org"
    assert cli("evidence", "add", "photo", "--kind", "signoff", "--by", "Grace").exit_code == 2
    assert cli("evidence", "add", "photo", "--kind", "human_audit", "--by", "x", "--checked", "2",
               "--held", "3").exit_code == 2
    bad = write(tmp_path / "bad_items.jsonl", [{"id": "1", "verdict": "maybe"}])
    assert cli("evidence", "add", "photo", "--kind", "human_audit", "--by", "x", "--items", str(bad)).exit_code == 2


def test_verifiers_check_exits_1_and_names_what_an_untrustworthy_verifier_let_through(project, cli):
    from tests.test_gather import ALWAYS

    (project / "lenient_checks.py").write_text("def always(output, reference, row):\n    return True\n")
    write(project / "domains/data/lenient.jsonl", [{"prompt": f"q{i}", "answer": str(i * 7)} for i in range(10)])
    write(project / "domains/data/lenient_wrong.jsonl", [{"prompt": "q3", "output": "22"}])
    (project / "domains" / "lenient.yaml").write_text(ALWAYS.replace("  - name: yes\n", "  - name: anything-goes\n"))
    assert cli("register", str(project / "domains")).exit_code == 0
    table = cli("verifiers", "check", "lenient", "--timeout", "5")
    assert table.exit_code == 1 and "NO" in table.stdout
    result = cli("verifiers", "check", "lenient", "--timeout", "5", "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["record"]["verifiers"]}
    lenient = checks["anything-goes"]
    assert not lenient["trustworthy"] and checks["strict"]["trustworthy"]
    assert any("lenient_wrong.jsonl:1" in leak for leak in lenient["leaked_controls"])
