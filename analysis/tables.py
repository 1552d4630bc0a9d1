"""The tables of the research, as pure functions of a trials frame (see :mod:`prunetune.analysis.query`).

* :func:`strategy_table` — best score per strategy x layers kept (x task): the Marathi study's table;
* :func:`max_droppable` — the most layers droppable within each tolerance (Poor Man's BERT);
* :func:`pruned_vs_scratch` — the best pruned model against one trained from random init, at equal depth;
* :func:`reference_row` — the unpruned, fine-tuned model every drop is measured against.

Only complete trials count as results: an early-stopped trial's score is half-trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from prunetune.search.decide import best_reference

from prunetune import records
from prunetune.libs import pd
from prunetune.records import COMPLETE, KIND_TRIAL, RANKED_BY

__all__ = [
    "DISTILL_COLUMNS", "cell", "distilled", "finished", "max_droppable", "pruned_vs_scratch", "reference_row",
    "reference_score", "status_counts", "strategy_table", "to_markdown"
]  # fmt: skip


def finished(frame: pd.DataFrame) -> pd.DataFrame:
    """Complete trials with a score: the rows :func:`prunetune.records.is_result` accepts."""
    return frame[(frame["kind"] == KIND_TRIAL) & (frame["status"] == COMPLETE) & frame["val_score"].notna()]


def reference_row(frame: pd.DataFrame) -> pd.DataFrame:
    """The reference runs: the tuned reference's best configuration, one run per decision seed."""
    rows = frame[(frame["kind"] == "reference") & frame["val_score"].notna()]
    return rows[["model", "task", "data", "layers_kept", "val_score", "test_score", "learning_rate", "epochs", "seed"]]


def reference_score(frame: pd.DataFrame) -> float | None:
    """What a search measures every drop against: the best reference configuration's mean over its seeds
    (the same rule as the search's, :func:`prunetune.search.decide.best_reference`)."""
    rows = reference_row(frame)
    if rows.empty:
        return None
    runs = [
        (float(r.learning_rate or 0.0), int(r.epochs or 0), int(r.seed or 0), float(r.val_score))
        for r in rows.fillna({"learning_rate": 0.0, "epochs": 0, "seed": 0}).itertuples()
    ]
    return float(best_reference(runs).score)


def strategy_table(frame: pd.DataFrame, score: str = "val_score") -> pd.DataFrame:
    """Best ``score`` per (task, strategy) row and layers-kept column, the reference as strategy ``none``."""
    trials = finished(frame)
    reference = frame[(frame["kind"] == "reference") & frame[score].notna()]
    rows = pd.concat([trials, reference])
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index=["task", "strategy"], columns="layers_kept", values=score, aggfunc="max")
    table = table.reindex(sorted(table.columns, reverse=True), axis=1)
    table.columns = [f"{int(k)} kept" for k in table.columns]
    return table.reset_index()


DISTILL_COLUMNS = ["distill_alpha", "distill_temperature"]


def distilled(frame: pd.DataFrame) -> bool:
    """Whether any run of ``frame`` learnt from a teacher (its columns are then worth showing)."""
    return bool(frame["distill_alpha"].fillna(0).gt(0).any()) if "distill_alpha" in frame else False


def max_droppable(frame: pd.DataFrame, tolerances: Sequence[float] = (0.01, 0.02, 0.03)) -> pd.DataFrame:
    """Per task and tolerance: the deepest drop of a complete trial within it (ties by score), with what achieved it.

    Args:
        frame: a search's runs (:func:`~prunetune.analysis.query.search_runs_frame`).
        tolerances: drops in the budget's unit: 0.01 is one point (or 1 % of the reference with a relative budget).

    Returns:
        One row per task and tolerance: ``max_layers_dropped`` (0: none within), and the trial's ``strategy``,
        ``kept_layers``, ``val_score``, ``drop``, ``learning_rate``, ``epochs``, ``run_id``. These are the search's
        own scores on one seed; ``prunetune max-drop`` re-checks finalists on other seeds.

    Example:
        >>> max_droppable(frame, [0.01, 0.03])[["tolerance", "max_layers_dropped", "kept_layers"]]  # doctest: +SKIP

    The drop is the one the trials recorded against the search's reference, in the unit of its budget (points, or a
    fraction of the reference with ``budget.relative``: :func:`prunetune.records.drop`); so are the tolerances.
    """
    trials = finished(frame)
    rows = []
    for task, group in trials.groupby("task", sort=True):
        for tolerance in tolerances:
            within = group[group["drop"] <= tolerance + records.EPSILON]  # records.within, on a column
            row: dict[str, object] = {"task": task, "tolerance": tolerance}
            if within.empty:
                rows.append(row | {"max_layers_dropped": 0, "strategy": "none within budget"})
                continue
            best = within.loc[max(within.index, key=lambda i: records.preference(*within.loc[i, list(RANKED_BY)]))]
            rows.append(
                row
                | {
                    "max_layers_dropped": int(best["layers_dropped"]),
                    "layers_kept": int(best["layers_kept"]),
                    "strategy": best["strategy"],
                    "kept_layers": best["kept_layers"],
                    "val_score": best["val_score"],
                    "drop": best["drop"],
                    "learning_rate": best["learning_rate"],
                    "epochs": best["epochs"],
                    "distill_alpha": best["distill_alpha"],
                    "run_id": best["run_id"],
                }
            )
    return pd.DataFrame(rows)


def pruned_vs_scratch(frame: pd.DataFrame) -> pd.DataFrame:
    """At each depth with a scratch baseline: the best pruned model's score, the scratch score, the margin."""
    scratch = frame[(frame["kind"] == "scratch") & frame["val_score"].notna()]
    trials = finished(frame)
    rows = []
    for (task, kept), group in scratch.groupby(["task", "layers_kept"], sort=True):
        pruned = trials[(trials["task"] == task) & (trials["layers_kept"] == kept)]
        best = pruned.sort_values("val_score", ascending=False).iloc[0] if not pruned.empty else None
        scratch_score = float(group["val_score"].max())
        pruned_score = None if best is None else float(best["val_score"])
        rows.append(
            {
                "task": task,
                "layers_kept": int(kept),
                "pruned_score": pruned_score,
                "pruned_strategy": None if best is None else best["strategy"],
                "scratch_score": scratch_score,
                "margin": None if pruned_score is None else pruned_score - scratch_score,
            }
        )
    return pd.DataFrame(rows)


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    trials = frame[frame["kind"] == "trial"]
    return {str(k): int(v) for k, v in trials["status"].value_counts().sort_index().items()}


def cell(value: object) -> str:
    """One value as the tables print it: blank when missing, small floats in e-notation, others to 4 places."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    if frame.empty:
        return "_(no rows)_"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
