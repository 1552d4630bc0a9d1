"""A real ``max-drop`` answer held against a measured table of the same setting (docs/benchmarks.md §1h).

Per tolerance: the depth it answered and the table's true depth (the most layers any configuration of the table
drops with its seed mean within the tolerance of the best reference mean), and whether the answer's interval
contains the table's mean drop for the answer's configuration (its kept layers at the table's learning rate
nearest the answer's on a log scale: the search samples half-octave rates, the table has octave ones).

    bench/against_table.py --answer answer.json --table bench/tables/minilm-l6-stsb-en-lr-seeds.csv
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # replay, beside this script
from paths import STSB_TABLE  # noqa: E402
from replay import load_table, seed_means, snap, true_answers  # noqa: E402

from prunetune.records import drop  # noqa: E402


def compare(answer: dict[str, Any], table_path: Path) -> list[dict[str, Any]]:
    table = load_table(table_path)
    tolerances = [item["tolerance"] for item in answer["tolerances"]]
    reference, truths = true_answers(table, tolerances)
    means = seed_means(table)
    rows = []
    for item in answer["tolerances"]:
        t, found = item["tolerance"], item["answer"]
        depth = 0 if found is None else found["layers_dropped"]
        row: dict[str, Any] = {"tolerance": t, "true_depth": truths[t], "depth": depth}
        if found is not None:
            lr = snap(found["learning_rate"], table.learning_rates)
            point = next((p for p in means if p[0] == tuple(found["kept_layers"]) and p[1] == lr), None)
            table_drop = None if point is None else drop(reference.score, means[point])
            low, high = found["interval"]
            row |= {
                "verdict": found["verdict"],
                "kept_layers": found["kept_layers"],
                "learning_rate": found["learning_rate"],
                "table_learning_rate": lr,
                "mean_drop": found["drop"],
                "interval": [low, high],
                "table_mean_drop": table_drop,
                "interval_holds_table_drop": None
                if table_drop is None or low is None
                else low - 1e-9 <= table_drop <= high + 1e-9,
            }
        row["within_one_layer"] = abs(row["depth"] - row["true_depth"]) <= 1
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| tolerance | answer (verdict) | table's depth | kept layers, lr (table's lr) | mean drop [interval] | "
        "table's mean drop | interval holds it |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        points = lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:+.2f}"  # noqa: E731
        if "verdict" not in row:
            lines.append(f"| {100 * row['tolerance']:g} | none | {row['true_depth']} | | | | |")
            continue
        low, high = row["interval"]
        lines.append(
            f"| {100 * row['tolerance']:g} | {row['depth']} ({row['verdict']}) | {row['true_depth']} | "
            f"{row['kept_layers']}, {row['learning_rate']:.1e} ({row['table_learning_rate']:.0e}) | "
            f"{points(row['mean_drop'])} [{points(low)}, {points(high)}] | {points(row['table_mean_drop'])} | "
            f"{row['interval_holds_table_drop']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--answer", type=Path, required=True, help="max-drop's --output JSON")
    parser.add_argument("--table", type=Path, default=STSB_TABLE)
    parser.add_argument("--json", type=Path, help="write the comparison here")
    args = parser.parse_args()
    rows = compare(json.loads(args.answer.read_text()), args.table)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
