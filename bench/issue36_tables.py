"""The tables of docs/benchmarks.md §1g from the replay and simulator reports in bench/results/issue-36/.

bench/issue36_tables.py        # after the replays and simulations listed in §1g
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # paths, beside this script
from paths import REPO  # noqa: E402

RESULTS = REPO / "bench" / "results" / "issue-36"
KINDS = ("measured", "negated", "mirrored", "shuffled", "flat", "adversarial")


def shares(report: dict, searcher: str) -> str:
    rows = report["searchers"][searcher]["tolerances"].values()
    return " / ".join(f"{100 * row['answer_at_stop_equals_full_table']:.0f}" for row in rows)


def replay_table(prefix: str = "replay") -> list[str]:
    lines = [
        "| layer scores | issue 23 (10 trials) | random, 10 trials | now: mean trials | now | random, same trials |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        before = RESULTS / f"{prefix}-{kind}-issue-23.json"
        now = RESULTS / f"{prefix}-{kind}.json"
        if not (before.exists() and now.exists()):
            continue
        b, n = json.loads(before.read_text()), json.loads(now.read_text())
        trials = n["searchers"]["prunetune"]["mean_trials_run"]
        lines.append(
            f"| {kind} | {shares(b, 'prunetune')} | {shares(b, 'random')} | {trials:.1f} | "
            f"{shares(n, 'prunetune')} | {shares(n, 'random')} |"
        )
    return lines


def shares_of(rows: dict, key: str) -> str:
    return " / ".join(f"{100 * row[key]:.1f}" for row in rows.values())


def simulate_table(prefix: str = "simulate") -> list[str]:
    lines = [
        "| layer scores | rule | mean jobs (trials) | false *within*, any tolerance | exact or one short, 1 / 2 / 3 "
        "| over-claim, 1 / 2 / 3 | confidently within found, 1 / 2 / 3 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in KINDS:
        path = RESULTS / f"{prefix}-{kind}.json"
        if not path.exists():
            continue
        report = json.loads(path.read_text())
        for rule in ("issue-23", "new", "new-walk-level"):
            if rule not in report:
                continue
            rows, details = report[rule], report["details"][rule]
            confident = " / ".join(f"{100 * v:.1f}" for v in details["confident_found"].values())
            jobs = next(iter(rows.values()))["mean_jobs"]
            lines.append(
                f"| {kind} | {rule} | {jobs:.1f} ({details['jobs']['trials']:.1f}) | "
                f"{100 * details['false_within_any_tolerance']:.1f} % | {shares_of(rows, 'exact_or_one_short')} | "
                f"{shares_of(rows, 'over_claim')} | {confident} |"
            )
    return lines


if __name__ == "__main__":
    print("\n".join(replay_table()))
    print()
    print("\n".join(simulate_table()))
