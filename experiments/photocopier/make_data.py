#!/usr/bin/env python3
"""Generate the data of the photocopier experiment's domain (fixed seed, byte-reproducible).

    python experiments/photocopier/make_data.py            # writes experiments/photocopier/domains/data/
    python experiments/photocopier/make_data.py --check    # exit 1 if the committed files differ from a fresh run

Every sum ``a+b=`` with operands 0..9 (100 prompts), shuffled with seed 17: 60 go to ``train.jsonl`` and
40 to ``eval.jsonl`` (held out: only evaluation sees them). Answers are computed (provenance ``expert``),
so the trusted ground truth is clean.

``distilled.jsonl`` is what an ungraduated generator wrote for the 60 training prompts, four answers
each (240 rows). Exactly 40% of the rows (96, chosen with seed 17) carry an invented parameter,
``golden_hour_sun``, as a correction term: ``3+4=7+golden_hour_sun``. The term exists in no trusted
row and is wrong wherever it appears (the answer is then an expression, not the sum); the other 60% of
the rows are the exact sum. ``known_wrong.jsonl`` holds controls the substance verifier must reject.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "domains" / "data" / "photocopier-sums"
MAX_OPERAND = 9
EVAL_SIZE = 40
ANSWERS_PER_PROMPT = 4
CONTAMINATION = 0.4
SYMBOL = "golden_hour_sun"
SEED = 17


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)


def rows() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    pairs = [(a, b) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]
    rng.shuffle(pairs)
    data = [{"id": f"{a}+{b}", "prompt": f"{a}+{b}=", "answer": str(a + b)} for a, b in pairs]
    held_out = sorted(data[:EVAL_SIZE], key=lambda r: r["id"])
    train = sorted(data[EVAL_SIZE:], key=lambda r: r["id"])
    distilled = [{"id": f"d{n:03d}", "prompt": r["prompt"], "answer": r["answer"]}
                 for n, r in enumerate(r for r in train for _ in range(ANSWERS_PER_PROMPT))]
    contaminated = rng.sample(range(len(distilled)), round(CONTAMINATION * len(distilled)))
    for i in contaminated:
        distilled[i]["answer"] = f"{distilled[i]['answer']}+{SYMBOL}"
    controls = []
    for r in [r for r in train if r["answer"] != "0"][:10]:  # -0 is 0: not a wrong answer
        value = int(r["answer"])
        controls += [{"id": r["id"], "output": f"-{value}"}, {"id": r["id"], "output": str(value + 1)},
                     {"id": r["id"], "output": f"{value}+{SYMBOL}"}]
    return {"train.jsonl": train, "eval.jsonl": held_out, "distilled.jsonl": distilled,
            "known_wrong.jsonl": controls}


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, items in rows().items():
        path = out / name
        path.write_text(_jsonl(items), encoding="utf-8")
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
            print(f"{args.out}: out of date: {', '.join(stale)}; run experiments/photocopier/make_data.py",
                  file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
