"""Results per row: ``evaluate --rows FILE``, ``audit-data --rows FILE`` and ``audit-data --write-clean FILE``.

    sink = RowSink(verifiers, display, rows_out=Path("rows.jsonl"), clean_out=Path("clean.jsonl"),
                   supported=vocabulary)
    sink.add(chunk, columns, texts)        # per chunk of the scan, in file order
    sink.finish(flagged={"golden_hour_sun"}, lineage={...})   # or sink.discard() when the scan failed

``--rows``: one JSON line per item, in input order: ``line`` (the item's line in the input), ``id`` (the row's
id or prompt key), ``passed`` (every substance verifier passed), ``verdicts`` (each verifier's verdict,
extracted answer and explanation) and ``flagged_symbols`` (the row's symbols that the scan flagged as
unsupported and recurrent).

``--write-clean``: only the rows that pass every substance verifier and carry no flagged symbol, each as it
was read plus a ``_lineage`` object (domain, version, input file and its sha256, line, provenance, lineage
depth, the audit's evidence id). Flags are known only when the whole file has been read, so both files are
first written to temporary files next to their targets (memory stays flat) and are moved into place, mode
0644, by ``finish``; a scan that fails leaves neither.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from graduation.atomicfile import default_mode
from graduation.errors import InputError
from graduation.evidence import symbols_in


class RowSink:
    def __init__(self, verifiers: Sequence[Any], display: str, *, rows_out: Path | None = None,
                 clean_out: Path | None = None, supported: set[str] | None = None) -> None:
        self.verifiers = list(verifiers)
        self.substance = [j for j, v in enumerate(self.verifiers) if v.role == "substance"]
        self.display = display
        self.supported = supported or set()
        self.targets: list[tuple[Path, Any, str]] = []
        self.rows_fh = self._open(rows_out) if rows_out is not None else None
        self.clean_fh = self._open(clean_out) if clean_out is not None else None

    def _open(self, target: Path) -> Any:
        target = Path(target)
        if target.is_dir():
            raise InputError(f"{target}: is a directory; give a file name for the rows")
        if not target.parent.is_dir():
            raise InputError(f"{target.parent}: no such directory; create it or choose another path")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        fh = os.fdopen(fd, "w", encoding="utf-8")
        self.targets.append((target, fh, tmp))
        return fh

    @property
    def active(self) -> bool:
        return bool(self.targets)

    def add(self, chunk: Sequence[tuple], columns: Sequence[Sequence[Any]], texts: Sequence[str]) -> None:
        """``chunk`` items are (line, row, output, reference, reference row, key), as the scan holds them."""

        for i, (line, row, _out, _ref, _refrow, key) in enumerate(chunk):
            verdicts = [column[i] for column in columns]
            ok = bool(self.substance) and all(verdicts[j][0] == "pass" for j in self.substance)
            tokens = sorted(t for t in symbols_in(texts[i]) if t not in self.supported) if texts[i] else []
            if self.rows_fh is not None:
                self.rows_fh.write(json.dumps({
                    "line": line, "id": key, "passed": ok,
                    "verdicts": [{"verifier": v.name, "role": v.role, "verdict": d[0], "answer": d[2],
                                  "explanation": d[3]} for v, d in zip(self.verifiers, verdicts)],
                    "_symbols": tokens}, ensure_ascii=False, default=str) + "\n")
            if self.clean_fh is not None and ok:
                self.clean_fh.write(json.dumps({"line": line, "row": dict(row), "_symbols": tokens},
                                               ensure_ascii=False, default=str) + "\n")

    def finish(self, flagged: set[str], lineage: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Resolve the flagged symbols, move the files into place; returns lines written per file."""
        counts: dict[str, int] = {}
        flagged = {s.lower() for s in flagged}
        for target, fh, tmp in self.targets:
            fh.close()
            final = tmp + ".final"
            written = 0
            with open(tmp, encoding="utf-8") as src, open(final, "w", encoding="utf-8") as dst:
                for text in src:
                    item = json.loads(text)
                    hits = [t for t in item.pop("_symbols") if t in flagged]
                    if fh is self.rows_fh:
                        item["flagged_symbols"] = hits
                        dst.write(json.dumps(item, ensure_ascii=False) + "\n")
                    elif not hits:
                        row = item["row"]
                        row["_lineage"] = {**(lineage or {}), "file": self.display, "line": item["line"]}
                        dst.write(json.dumps(row, ensure_ascii=False) + "\n")
                    else:
                        continue
                    written += 1
            os.chmod(final, default_mode())
            os.replace(final, target)
            os.unlink(tmp)
            counts[str(target)] = written
        self.targets = []
        return counts

    def discard(self) -> None:
        for _target, fh, tmp in self.targets:
            fh.close()
            for path in (tmp, tmp + ".final"):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        self.targets = []


__all__ = ["RowSink"]
