"""A test split for the IndicNews English headlines, which ship with train and validation only: a seeded
shuffle holds 4,610 training rows out as test.csv (never sampled for training); validation.csv is linked.

    bench/heldout.py --out prunetune-runs/heldout      # then PRUNETUNE_DATA_DIR=prunetune-runs/heldout

The copy stays outside the repository (never commit the data); docs/benchmarks.md §1d uses it.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "indicnews-english-shc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the folder with train.csv and validation.csv")
    parser.add_argument("--out", type=Path, required=True, help="a data directory (PRUNETUNE_DATA_DIR) to create")
    parser.add_argument("--rows", type=int, default=4610, help="training rows held out (the validation size)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with (args.source / "train.csv").open(newline="", encoding="utf-8") as handle:
        header, *body = list(csv.reader(handle))
    order = list(range(len(body)))
    random.Random(args.seed).shuffle(order)
    held = set(order[: args.rows])
    target = args.out / args.source.name
    target.mkdir(parents=True, exist_ok=True)
    for name, keep in (("train.csv", lambda i: i not in held), ("test.csv", lambda i: i in held)):
        with (target / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(row for i, row in enumerate(body) if keep(i))
    link = target / "validation.csv"
    if not link.exists():
        link.symlink_to((args.source / "validation.csv").resolve())
    print(f"{target}: {len(body) - len(held)} train, {len(held)} test rows; validation linked")


if __name__ == "__main__":
    main()
