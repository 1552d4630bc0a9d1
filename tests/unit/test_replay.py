"""bench/replay.py: max-drop replayed against the seed table of bench/tables/."""

from __future__ import annotations

import csv
import importlib.util
import json
import statistics
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "replay.py"
TOLERANCES = [0.01, 0.02, 0.03]


@pytest.fixture(scope="module")
def bench():
    """The bench module, imported from its file (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("prunetune_bench_replay", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def table(bench):
    return bench.load_table(bench.SEED_TABLE)


@pytest.fixture(scope="module")
def layer_scores(bench):
    from prunetune.records import LayerScores

    return LayerScores.from_json(bench.LAYER_SCORES.read_text())


@pytest.fixture(scope="module")
def report(bench, table, layer_scores):
    return bench.run_all(table, layer_scores, TOLERANCES, seeds=2, max_finalists=4, max_trials=10)


def test_report_has_every_field(bench, table, report):
    json.dumps(report)  # JSON-ready as it stands
    for key in ("table", "grid_size", "goal_trials", "reference", "true_answer", "searchers", "per_seed"):
        assert key in report
    assert report["grid_size"] == len(table.grid)
    assert report["goal_trials"] == report["grid_size"] // 5
    assert {"learning_rate", "score"} <= set(report["reference"])
    assert set(report["searchers"]) == set(report["per_seed"]) == {"prunetune", "random", "grid"}
    for name, summary in report["searchers"].items():
        assert set(summary["tolerances"]) == {str(t) for t in TOLERANCES}
        for row in summary["tolerances"].values():
            for key in (
                "true_answer",
                "median_trials",
                "p80_trials",
                "reached_within_goal",
                "answer_at_goal_correct",
                "verdicts_at_goal",
                "final_answer_correct",
            ):
                assert key in row, (name, key)
            assert sum(row["verdicts_at_goal"].values()) == 2
            # the same depth as the full-table answer is as near the truth as it: the second share holds the first
            assert 0 <= row["answer_at_goal_equals_full_table"] <= row["answer_at_goal_as_near_as_full_table"] <= 1
            assert set(row["verdicts_at_goal"]) <= {"within", "borderline", "none"}
            assert 1 <= row["median_trials"] <= report["grid_size"] + 1
        assert len(report["per_seed"][name]) == 2
        for run in report["per_seed"][name]:
            assert run["search_seed"] in table.seeds
            assert 1 <= run["trials"] <= 10
    assert "| searcher | tolerance |" in bench.markdown(report)


def test_true_answers_come_from_the_seed_means(bench, report):
    """At 0.02, recomputed here from the CSV alone: means over seeds, the reference tuned over its rates."""
    with bench.SEED_TABLE.open() as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] != "random-init"]
    by_config: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        by_config.setdefault((r["variant"], r["kept_layers"], r["learning_rate"]), []).append(float(r["val_score"]))
    means = {k: statistics.mean(v) for k, v in by_config.items()}
    reference = max(m for (variant, _, _), m in means.items() if variant == "reference")
    expected = max(
        int(r["layers_dropped"])
        for r in rows
        if r["variant"] == "pruned" and reference - means[("pruned", r["kept_layers"], r["learning_rate"])] <= 0.02
    )
    assert report["true_answer"]["0.02"] == expected
    assert report["reference"]["score"] == pytest.approx(reference)
    assert all(row["tolerances"]["0.02"]["true_answer"] == expected for row in report["searchers"].values())


@pytest.mark.parametrize("searcher", ["prunetune", "random", "grid", "cycled"])
def test_never_trains_a_point_twice_on_one_seed(bench, table, layer_scores, searcher):
    for replay_seed in (0, 1):
        run = bench.replay(searcher, replay_seed, table, layer_scores, TOLERANCES, max_trials=40)
        assert len(run.points) == len(set(run.points))
        assert set(run.points) <= set(table.grid)  # every trial read from the table, on the search seed
        assert run.search_seed not in run.decision_seeds
        assert all(len(depths) == len(run.points) for depths in run.depths.values())
        if searcher == "random":
            assert run.repeats > 0  # the rule was exercised: repeats were told, not trained


def test_learning_rates_snap_to_the_table(bench, table):
    rates = table.learning_rates
    assert bench.snap(4e-4, rates) == 4e-4
    assert bench.snap(1.6e-3, rates) == 8e-4  # beyond the table: its highest rate
    assert bench.snap(2.82843e-4, rates) == 2e-4  # a half-octave point between two: the lower one
    assert bench.snap(5.65685e-4, rates) == 4e-4
