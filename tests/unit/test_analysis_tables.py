"""Each research table, and the --where/--sort language, on small typed frames."""

from __future__ import annotations

import pandas as pd
import pytest
from prunetune.analysis import select, tables
from prunetune.analysis.plots import dropped_block, pareto_front, window_grid
from prunetune.analysis.query import COLUMNS, AnalysisError


def frame_of(*rows: dict) -> pd.DataFrame:
    base = {"kind": "trial", "status": "complete", "task": "classification", "epochs": 2, "learning_rate": 1e-4}
    full = []
    for number, row in enumerate(rows):
        row = base | {"run_id": f"r{number}"} | row
        if "kept_layers" in row and "layers_kept" not in row:
            row["layers_kept"] = len(row["kept_layers"])
            row["layers_dropped"] = 6 - row["layers_kept"]
        full.append(row)
    return pd.DataFrame(full, columns=list(COLUMNS)).astype(COLUMNS)


REFERENCE = {"kind": "reference", "strategy": "none", "kept_layers": list(range(6)), "val_score": 0.80, "drop": 0.0}
TRIALS = frame_of(
    REFERENCE,
    {"strategy": "top", "kept_layers": [0, 1, 2, 3], "val_score": 0.795, "drop": 0.005},
    {"strategy": "middle", "kept_layers": [0, 1, 4, 5], "val_score": 0.79, "drop": 0.010},
    {"strategy": "top", "kept_layers": [0, 1, 2], "val_score": 0.78, "drop": 0.020},
    {"strategy": "window", "kept_layers": [0, 4, 5], "val_score": 0.785, "drop": 0.015},
    {"strategy": "bottom", "kept_layers": [4, 5], "val_score": 0.70, "drop": 0.100},
    {"strategy": "top", "kept_layers": [0], "val_score": 0.79, "drop": 0.01, "status": "early-stopped"},
    {"kind": "scratch", "strategy": "scratch", "kept_layers": [0, 1, 2], "val_score": 0.60},
)


def test_max_droppable_takes_the_deepest_drop_within_each_tolerance_ties_by_score() -> None:
    table = tables.max_droppable(TRIALS, [0.005, 0.01, 0.02, 0.001])
    by_tolerance = {row["tolerance"]: row for _, row in table.iterrows()}
    assert by_tolerance[0.005]["max_layers_dropped"] == 2 and by_tolerance[0.005]["strategy"] == "top"
    assert by_tolerance[0.01]["max_layers_dropped"] == 2  # middle also drops 2 but scores lower
    assert by_tolerance[0.01]["strategy"] == "top"
    assert by_tolerance[0.02]["max_layers_dropped"] == 3 and by_tolerance[0.02]["strategy"] == "window"
    assert by_tolerance[0.001]["strategy"] == "none within budget"  # the early-stopped trial never counts


def test_max_droppable_reads_drops_in_the_unit_they_were_recorded_in() -> None:
    # A relative search records drop = (reference - score) / reference: 0.020 / 0.80 = 0.025, over 0.02.
    relative = TRIALS.assign(drop=TRIALS["drop"] / 0.80)
    table = tables.max_droppable(relative, [0.02])
    assert table.iloc[0]["max_layers_dropped"] == 3 and table.iloc[0]["drop"] == pytest.approx(0.015 / 0.80)


def test_strategy_table_is_best_score_per_strategy_and_depth_with_the_reference() -> None:
    table = tables.strategy_table(TRIALS).set_index("strategy")
    assert list(table.columns) == ["task", "6 kept", "4 kept", "3 kept", "2 kept"]
    assert table.loc["none", "6 kept"] == pytest.approx(0.80)
    assert table.loc["top", "4 kept"] == pytest.approx(0.795) and table.loc["top", "3 kept"] == pytest.approx(0.78)
    assert pd.isna(table.loc["bottom", "4 kept"])
    assert "scratch" not in table.index and "1 kept" not in table.columns  # early-stopped left out


def test_pruned_vs_scratch_compares_equal_depth() -> None:
    row = tables.pruned_vs_scratch(TRIALS).iloc[0]
    assert row["layers_kept"] == 3 and row["pruned_strategy"] == "window"
    assert row["margin"] == pytest.approx(0.785 - 0.60)


def test_reference_row_and_markdown() -> None:
    assert tables.reference_score(TRIALS) == pytest.approx(0.80)
    text = tables.to_markdown(tables.max_droppable(TRIALS, [0.02]))
    lines = text.splitlines()
    assert lines[0].startswith("| task | tolerance | max_layers_dropped") and lines[1].startswith("| --- |")
    assert "| window |" in lines[2] and "0.7850" in lines[2]


def test_where_filters_by_number_text_and_list_and_names_bad_input() -> None:
    assert list(select.where(TRIALS, "drop<=0.01 and strategy=top")["val_score"]) == [0.795, 0.79]
    assert list(select.where(TRIALS, "kept_layers=[0, 4, 5]")["strategy"]) == ["window"]
    assert len(select.where(TRIALS, "kind != 'trial'")) == 2
    with pytest.raises(AnalysisError, match="no column 'acc'.*val_score"):
        select.where(TRIALS, "acc > 0.5")
    with pytest.raises(AnalysisError, match="cannot read 'drop ~ 1'"):
        select.where(TRIALS, "drop ~ 1")


def test_where_reads_or_not_parentheses_and_membership_as_python_does() -> None:
    either = select.where(TRIALS, "kind=reference or (strategy in [window, bottom] and drop <= 0.05)")
    assert sorted(either["kind"] + ":" + either["strategy"]) == ["reference:none", "trial:window"]
    unfinished = select.where(TRIALS, "not drop <= 0.01")  # a row with no drop matches no comparison on it
    assert TRIALS["drop"].isna().sum() > 0 and set(unfinished.index) == set(TRIALS.index[TRIALS["drop"] > 0.01]) | set(
        TRIALS.index[TRIALS["drop"].isna()]
    )
    assert list(select.where(TRIALS, "kept_layers in [[0, 4, 5], [9]]")["strategy"]) == ["window"]
    with pytest.raises(AnalysisError, match="`in` takes a list"):
        select.where(TRIALS, "strategy in top")


def test_sort_descending_with_missing_values_last() -> None:
    ordered = select.sort(TRIALS, "-drop,val_score")
    assert list(ordered["drop"].dropna()) == sorted(TRIALS["drop"].dropna(), reverse=True)
    assert ordered["drop"].isna().iloc[-1]


def test_pareto_front_and_window_grid() -> None:
    front = pareto_front(TRIALS)
    assert list(front["layers_kept"]) == [2, 3, 4]  # each keeps fewer layers or scores higher than the rest
    assert dropped_block([0, 1, 4, 5], 6) == (2, 2) and dropped_block([0, 2, 4], 6) is None
    grid = window_grid(TRIALS)
    assert grid.loc[2, 4] == pytest.approx(0.795) and grid.loc[2, 2] == pytest.approx(0.79)
    assert pd.isna(grid.loc[1, 0])
