"""How many decision seeds a tolerance needs: the spread of one seed's paired drop, from the seed table.

For every pruned configuration of the table whose seed mean is near the top (within 4 points of the tuned
reference: the configurations a max-drop decision is about), the paired drop on each seed is
``reference_s - score_s`` with the tuned reference (best learning rate by seed mean) on the same seed. With two
seeds, ``(d_0 - d_1)² / 2`` estimates the variance of one seed's drop; pooled over the configurations it gives
``sd``. The 95 % interval of a mean over ``n`` seeds is then ``± t(0.975, n-1) · sd / √n``.

    bench/seeds.py     # the seed table of bench/tables/ unless --table says otherwise
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

from prunetune.search.decide import best_reference, half_width

sys.path.insert(0, str(Path(__file__).resolve().parent))  # paths, beside this script
from paths import SEED_TABLE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(SEED_TABLE))
    parser.add_argument("--near", type=float, default=0.04, help="configurations within this of the reference")
    args = parser.parse_args()
    scores: dict[tuple[str, str, float, int], dict[int, float]] = {}
    with open(args.table) as handle:
        for row in csv.DictReader(handle):
            key = (row["variant"], row["kept_layers"], float(row["learning_rate"]), int(row["epochs"]))
            scores.setdefault(key, {})[int(row["seed"])] = float(row["val_score"])
    reference = best_reference(
        [
            (lr, epochs, seed, s)
            for (v, _, lr, epochs), by_seed in scores.items()
            if v == "reference"
            for seed, s in by_seed.items()
        ]
    )
    squares = []
    for (variant, _, _, _), by_seed in scores.items():
        if variant != "pruned" or reference.score - statistics.mean(by_seed.values()) > args.near:
            continue
        d0, d1 = (reference.scores[s] - by_seed[s] for s in sorted(by_seed)[:2])
        squares.append((d0 - d1) ** 2 / 2)
    sd = math.sqrt(statistics.mean(squares))
    print(
        f"tuned reference: lr {reference.learning_rate:g}, "
        f"mean {reference.score:.4f} over seeds {list(reference.scores)}"
    )
    print(
        f"{len(squares)} configurations within {args.near:g}: "
        f"one seed's paired drop spreads by sd = {100 * sd:.2f} points"
    )
    print("\n| decision seeds | 95 % half-width (points) |\n| --- | --- |")
    for n in range(2, 11):
        print(f"| {n} | ±{100 * half_width(sd, n):.2f} |")
    print(json.dumps({"sd": sd, "configurations": len(squares)}))


if __name__ == "__main__":
    main()
