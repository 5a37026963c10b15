#!/usr/bin/env python3
"""Generate the data of the toy-arithmetic domain (fixed seed, byte-reproducible).

    python scripts/make_toy_data.py                # writes domains/data/toy-arithmetic/
    python scripts/make_toy_data.py --out /tmp/x   # writes elsewhere
    python scripts/make_toy_data.py --check        # exit 1 if the committed files differ from a fresh run

Every sum ``a+b=`` with operands 0..9 (100 prompts), shuffled with seed 0: 60 go to ``train.jsonl``
(the prompts GRPO trains on) and 40 to ``eval.jsonl`` (held out: only evaluation rounds see them).
Answers are computed, so the provenance is ``expert``. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "domains" / "data" / "toy-arithmetic"
MAX_OPERAND = 9
EVAL_SIZE = 40
SEED = 0


def rows() -> tuple[list[dict], list[dict]]:
    pairs = [(a, b) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]
    random.Random(SEED).shuffle(pairs)
    data = [{"id": f"{a}+{b}", "prompt": f"{a}+{b}=", "answer": str(a + b)} for a, b in pairs]
    held_out = sorted(data[:EVAL_SIZE], key=lambda r: r["id"])
    train = sorted(data[EVAL_SIZE:], key=lambda r: r["id"])
    return train, held_out


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    train, held_out = rows()
    written = []
    for name, items in (("train.jsonl", train), ("eval.jsonl", held_out)):
        path = out / name
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in items), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare a fresh run with the files in --out")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = write(Path(tmp))
            stale = [p.name for p in fresh if not (args.out / p.name).is_file()
                     or (args.out / p.name).read_bytes() != p.read_bytes()]
        if stale:
            print(f"{args.out}: out of date: {', '.join(stale)}; run scripts/make_toy_data.py", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
