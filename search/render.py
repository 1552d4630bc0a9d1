"""What the terminal says of a search: its trial count before it starts, and its answer once it has finished."""

from __future__ import annotations

from prunetune.search.outcome import SearchResult
from prunetune.search.spec import SearchSpec, droppable_depths, trial_counts, trials_per_depth

from prunetune.records import budget_unit, in_budget_unit

__all__ = ["render_search", "trials_line"]


def trials_line(spec: SearchSpec, num_layers: int) -> str:
    """What the terminal says of the trial count before the search, e.g. "num_trials unset: at least 10 trials (2
    per depth the search may drop, 1 to 5 of 6 layers), then on while an answer is still open, at most 25; --set
    num_trials=N for a fixed count"."""
    least, most = trial_counts(spec, num_layers)
    depths = droppable_depths(spec.space, num_layers)
    counts = f"{depths.start}" if len(depths) == 1 else f"{depths.start} to {depths.stop - 1}"
    per_depth = f"{trials_per_depth(spec.space)} per depth the search may drop, " if spec.min_trials is None else ""
    return (
        f"num_trials unset: at least {least} trials ({per_depth}{counts} of {num_layers} layers), then on while an "
        f"answer is still open, at most {most}; --set num_trials=N for a fixed count"
    )


def render_search(result: SearchResult, tolerance: float, relative: bool) -> str:
    """The search's answer as a person reads it: the reference, the best trial within the budget, the model."""
    lines = [
        f"reference: {result.reference.describe()}",
        f"trials: {result.trials}; MLflow search run {result.parent_run_id}; Ray results {result.experiment_path}",
        "",
    ]
    best, budget = result.best, in_budget_unit(tolerance, relative)
    if best is None:
        lines.append(f"no trial stayed within the budget ({budget}): widen it, or search more trials")
        return "\n".join(lines)
    lines += [
        "| layers dropped | strategy | kept layers | lr | epochs | val_score | drop |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {best.layers_dropped} | {best.strategy} | {best.kept_layers} | {best.learning_rate:.1e} | "
        f"{best.epochs} | {best.val_score:.4f} | {in_budget_unit(best.drop, signed=True)} |",
        "",
        f"drop in {budget_unit(relative)}, within the budget of {budget}; the score is the best of the search's trials "
        "on one seed (biased upward): `prunetune max-drop` re-checks answers over seeds",
    ]
    if result.model is not None:
        lines.append(f"model: {result.model.path} (MLflow {result.model.model_uri})")
    return "\n".join(lines)
