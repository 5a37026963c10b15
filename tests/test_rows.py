"""Streaming readers: JSONL, JSON, CSV, Parquet; malformed rows reported by file and line."""

from __future__ import annotations

import json

import pytest

from graduation.rows import ReadReport, iter_rows, read_rows
from graduation.errors import DataError

ROWS = [{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": "2"}, {"prompt": "c", "answer": "3"}]


def test_jsonl_json_csv_parquet_read_the_same_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS) + "\n")
    (tmp_path / "d.json").write_text(json.dumps(ROWS, indent=2))
    (tmp_path / "d.csv").write_text("prompt,answer\n" + "".join(f"{r['prompt']},{r['answer']}\n" for r in ROWS))
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet")
    for suffix in ("jsonl", "json", "csv", "parquet"):
        assert read_rows(tmp_path / f"d.{suffix}") == ROWS, suffix
    assert [line for line, _ in iter_rows(tmp_path / "d.json")] == [2, 6, 10]
    assert [line for line, _ in iter_rows(tmp_path / "d.csv")] == [2, 3, 4]
    (tmp_path / "w.json").write_text(json.dumps({"rows": ROWS}))
    assert read_rows(tmp_path / "w.json") == ROWS


def test_json_arrays_stream_across_chunk_boundaries(tmp_path):
    from graduation import rows as data

    rows = [{"i": i, "text": "x" * (i % 37), "nested": {"a": [i, {"b": "]},["}]}} for i in range(2000)]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(rows, indent=1))
    read = list(data._json(path, ReadReport("big.json"), chunk=257))
    assert [r for _, r in read] == rows


def test_malformed_rows_are_all_reported_with_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n[1, 2]\n\n{"a": 2}\n"text"\n')
    report = ReadReport("bad.jsonl")
    good = list(iter_rows(path, report))
    assert [line for line, _ in good] == [1, 5]
    assert [line for line, _ in report.problems] == [2, 3, 6]
    with pytest.raises(DataError) as err:
        read_rows(path, display="bad.jsonl")
    assert "bad.jsonl:2: not valid JSON" in str(err.value)
    assert "bad.jsonl:3: expected a JSON object, got list" in str(err.value)


def test_csv_rows_with_the_wrong_width_and_bad_json_arrays(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n4,5,6\n")
    with pytest.raises(DataError, match=r"bad.csv:3: 1 values for 2 columns[\s\S]*bad.csv:4: 3 values"):
        read_rows(tmp_path / "bad.csv", display="bad.csv")
    (tmp_path / "open.json").write_text('[{"a": 1},\n {"a": 2}')
    with pytest.raises(DataError, match="open.json:2: the JSON array is not closed"):
        read_rows(tmp_path / "open.json", display="open.json")
    (tmp_path / "scalar.json").write_text("3")
    with pytest.raises(DataError, match="array of objects"):
        read_rows(tmp_path / "scalar.json")


def test_invalid_utf8_reads_and_is_kept_visible(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"output": "ok \xff\xfe"}\n')
    (row,) = read_rows(path)
    with pytest.raises(UnicodeEncodeError):
        row["output"].encode("utf-8")


def test_unknown_formats_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_rows(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_rows(tmp_path / "x.txt")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="broken.parquet:1: not a readable Parquet file"):
        read_rows(tmp_path / "broken.parquet", display="broken.parquet")


def test_memory_stays_flat_on_a_large_jsonl(tmp_path, monkeypatch):
    import tracemalloc

    from graduation import rows as data

    monkeypatch.setattr(data, "PIECE_BYTES", 512 << 10)
    monkeypatch.setattr(data, "FAST_MIN_BYTES", 64 << 10)

    def peak_for(rows: int) -> int:
        path = tmp_path / f"big{rows}.jsonl"
        with path.open("w") as fh:
            for i in range(rows):
                fh.write(json.dumps({"prompt": f"p{i}", "answer": "x" * 50}) + "\n")
        tracemalloc.start()
        count = sum(1 for _ in iter_rows(path))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == rows
        return peak

    small, large = peak_for(20_000), peak_for(80_000)  # ~1.6 MB and ~6.5 MB
    assert large < small * 1.3  # one piece at a time, not the file
    assert large < 16_000_000


def test_fast_and_careful_jsonl_paths_agree(tmp_path):
    from graduation.rows import split_ranges

    rows = [{"prompt": f"p{i}", "answer": str(i), "n": i, "ok": i % 2 == 0, "tags": ["a", "b"]} for i in range(30_000)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path = tmp_path / "fast.jsonl"
    path.write_text(text)
    got = list(iter_rows(path))
    assert [r for _, r in got] == rows and got[-1][0] == 30_000
    # a null, a missing field, a blank line and a bad row in the middle: read line by line there
    lines = text.splitlines()
    lines[10] = '{"prompt": "p10", "answer": null}'
    lines[20] = '{"prompt": "p20"}'
    lines.insert(25_000, "")
    lines[29_000] = "{broken"
    path.write_text("\n".join(lines) + "\n")
    report = ReadReport("fast.jsonl")
    got = dict(iter_rows(path, report))
    assert got[11] == {"prompt": "p10", "answer": None} and got[21] == {"prompt": "p20"}
    assert report.problems == [(29_001, "not valid JSON (Expecting property name enclosed in double quotes at column 2)")]
    assert got[30_001]["prompt"] == "p29999"
    ranges = split_ranges(path, 3)
    assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
    from graduation.rows import iter_jsonl_range

    joined = {}
    for start, end, first in ranges:
        joined.update(iter_jsonl_range(path, ReadReport("x"), start, end, first))
    assert joined == got


def test_text_after_a_json_array_is_reported_with_its_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n{"prompt": "a"}\n]\n{"prompt": "never read"}\n')
    with pytest.raises(DataError) as info:
        read_rows(path, display="rows.json")
    assert "rows.json:4: text after the end of the JSON array" in str(info.value)
