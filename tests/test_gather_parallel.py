"""A large JSONL scan split across forked processes counts exactly what one process counts."""

from __future__ import annotations

import json

import pytest

from graduation.service import evaluation, scan
from graduation.errors import DataError
from tests.test_gather import PHOTO, manual_rows, register_domain, write
from tests.modelreg import registered


@pytest.fixture
def photo_db(project, db_url):
    data = project / "domains" / "data" / "photo"
    write(data / "manual.jsonl", manual_rows())
    write(data / "distilled.jsonl", manual_rows()[:3])
    write(data / "wrong.jsonl", [{"id": "p1", "output": "exposure = 3, aperture = 3"}])
    return register_domain(project, db_url, PHOTO, "photo")


def _outputs(tmp_path, bad_line: int | None = None):
    rows = []
    for k in range(3):
        for row in manual_rows():
            wrong = (int(row["id"][1:]) + k) % 5 == 0
            output = "exposure = 99, aperture = 1" if wrong else row["answer"]
            if int(row["id"][1:]) % 4 == 0:
                output += " warp_field_k"
            rows.append({"id": row["id"], "output": output})
    lines = [json.dumps(r) for r in rows]
    if bad_line is not None:
        lines[bad_line - 1] = "{oops"
    path = tmp_path / "outputs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_parallel_scan_matches_the_sequential_one(photo_db, project, tmp_path, monkeypatch):
    path = _outputs(tmp_path)
    sequential = evaluation.evaluate(photo_db, project, "photo", path, model=registered(photo_db, "m"), store=False).record
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    parallel = evaluation.evaluate(photo_db, project, "photo", path, model=registered(photo_db, "m"), store=False).record
    assert parallel == sequential
    assert sequential.consistency.k == 3 and sequential.symbols[0].symbol == "warp_field_k"


def test_parallel_scan_reports_malformed_rows_with_their_lines(photo_db, project, tmp_path, monkeypatch):
    path = _outputs(tmp_path, bad_line=250)
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    with pytest.raises(DataError, match="outputs.jsonl:250: not valid JSON"):
        evaluation.evaluate(photo_db, project, "photo", path, model=registered(photo_db, "m"), store=False)
