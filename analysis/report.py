"""One self-contained HTML report of a search: its answer, the research tables, the plots and the spec.

Plots are inlined as SVG and the style sheet is embedded, so the single file opens in any browser,
offline, and can be mailed or logged as an artifact of the search's parent run.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prunetune.analysis import tables
from prunetune.analysis.query import Search
from prunetune.search.store import TrackingClient

from prunetune.libs import yaml
from prunetune.records import LAYER_SCORES_ARTIFACT, RANKED_BY, SPEC_ARTIFACT, LayerScores, counted, in_budget_unit

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1f2328; line-height: 1.5; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de;
       padding-bottom: 0.2rem; margin-top: 2rem; }
.meta { color: #59636e; } .answer { background: #f6f8fa; border-left: 4px solid #1a7f37; padding: 0.6rem 1rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f6f8fa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; } figure svg { width: 100%; max-width: 820px; height: auto; }
summary { cursor: pointer; color: #0969da; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.scroll { max-height: 28rem; overflow-y: auto; }
.wide { max-width: 100%; overflow-x: auto; }  /* a table wider than the page scrolls inside it, never past it */
"""


@dataclass(frozen=True)
class ReportInputs:
    search: Search
    frame: pd.DataFrame
    spec: dict[str, Any] | None
    scores: LayerScores | None
    tolerances: tuple[float, ...]


def _table(frame: pd.DataFrame) -> str:
    """An HTML table: numbers right-aligned, text left, with the Markdown tables' number formatting."""
    if frame.empty:
        return "<p><em>No rows yet.</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for value in values:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            cells.append(f"<td class='{'num' if number else 'text'}'>{html.escape(tables._cell(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"


def _svg(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inline SVG in HTML5


def _answer(inputs: ReportInputs, tolerance: float, relative: bool) -> str:
    best = tables.max_droppable(inputs.frame, [tolerance])
    reference = tables.reference_score(inputs.frame)
    budget = in_budget_unit(tolerance, relative)
    if best.empty or best.iloc[0].get("max_layers_dropped", 0) == 0:
        return f"No complete trial stayed within {budget} of the reference yet."
    row = best.iloc[0]
    return (
        f"Within {budget} of the reference ({reference:.4f}), <b>{int(row['max_layers_dropped'])} layers</b> "
        f"can be dropped: strategy <b>{html.escape(str(row['strategy']))}</b>, keeping layers "
        f"{html.escape(str(row['kept_layers']))}, score {row['val_score']:.4f} "
        f"(drop {in_budget_unit(row['drop'], relative, signed=True)}), "
        f"learning rate {row['learning_rate']:.2e}, {counted(int(row['epochs']), 'epoch')}{_taught(row)}. "
        "This is the search's own score, one seed, the best of many trials: <code>prunetune max-drop</code> "
        "re-trains such finalists on other seeds and says how sure the answer is."
    )


def _taught(row: Any) -> str:
    alpha = row.get("distill_alpha")
    return f", distilled from the tuned reference (alpha {alpha:g})" if alpha == alpha and alpha else ""


def _spec_text(spec: dict[str, Any]) -> str:
    return html.escape(yaml.safe_dump(spec, sort_keys=False)) if spec else "not recorded"


def render(inputs: ReportInputs) -> str:
    """The report as one HTML document."""
    from prunetune.analysis import plots

    search, frame, spec = inputs.search, inputs.frame, inputs.spec or {}
    budget = spec.get("budget", {})
    tolerance = float(budget.get("tolerance", max(inputs.tolerances)))
    relative = bool(budget.get("relative", False))
    trial = spec.get("trial", {})
    source = trial.get("data", {}).get("source", "?")
    counts = tables.status_counts(frame)
    counts_text = ", ".join(f"{n} {status}" for status, n in counts.items()) or "none yet"
    figures = plots.all_figures(frame, tolerance, inputs.scores, relative, spec.get("multi_axis", "layers_kept"))
    shown_columns = [
        "strategy", "layers_dropped", "kept_layers", "val_score", "drop", "latency_ms", "learning_rate", "epochs",
        "epochs_run", "status", "run_id",
    ] + (tables.DISTILL_COLUMNS if tables.distilled(frame) else [])  # fmt: skip
    trials = frame[frame["kind"] == "trial"].sort_values(list(RANKED_BY), ascending=False)
    sections = [
        f"<h1>prunetune report: {html.escape(search.experiment_name)}</h1>",
        f"<p class='meta'>search run {html.escape(search.run_id)} ({html.escape(search.status.lower())}), started "
        f"{search.started:%Y-%m-%d %H:%M} UTC · model {html.escape(str(trial.get('model', '?')))} · task "
        f"{html.escape(str(trial.get('task', '?')))} · data {html.escape(str(source))}"
        f" · trials: {html.escape(counts_text)}</p>",
        f"<p class='answer'>{_answer(inputs, tolerance, relative)}</p>",
        "<h2>Maximum droppable layers per tolerance</h2>",
        f"<p>Tolerances and drops as recorded: fractions of the score{' (of the reference)' if relative else ''}; "
        f"0.01 is {in_budget_unit(0.01, relative)}.</p>",
        _table(tables.max_droppable(frame, inputs.tolerances).drop(columns=["run_id"], errors="ignore")),
        "<h2>Reference (unpruned, fine-tuned)</h2>",
        _table(tables.reference_row(frame).dropna(axis=1, how="all")),  # no test split: no empty test_score column
        "<h2>Best score per strategy and layers kept</h2>",
        _table(tables.strategy_table(frame)),
        "<h2>Pruned vs trained from scratch, at equal depth</h2>",
        _table(tables.pruned_vs_scratch(frame))
        if (frame["kind"] == "scratch").any()
        else "<p><em>No scratch baselines in this search: add <code>scratch_layers: [2, 6]</code> to the spec."
        "</em></p>",
        "<h2>Plots</h2>",
        *(f"<figure>{_svg(figure)}</figure>" for figure in figures.values()),
        "<h2>All trials</h2>",
        f"<div class='scroll'>{_table(trials[shown_columns])}</div>",
        "<h2>Spec</h2>",
        f"<details><summary>the spec this search ran (YAML)</summary><pre>{_spec_text(spec)}</pre></details>",
    ]
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>prunetune report: {html.escape(search.experiment_name)}</title>"
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def load_inputs(mlflow: TrackingClient, search: Search, tolerances: Sequence[float]) -> ReportInputs:
    """Everything the report shows, read from MLflow only."""
    from prunetune.analysis.query import read_artifact, search_runs_frame

    spec_text = read_artifact(mlflow, search, SPEC_ARTIFACT)
    scores_text = read_artifact(mlflow, search, LAYER_SCORES_ARTIFACT)
    return ReportInputs(
        search=search,
        frame=search_runs_frame(mlflow, search),
        spec=json.loads(spec_text) if spec_text else None,
        scores=LayerScores.from_json(scores_text) if scores_text else None,
        tolerances=tuple(sorted(tolerances)),
    )


def write_report(
    mlflow: TrackingClient, search: Search, output: str | Path, tolerances: Sequence[float], log: bool = True
) -> Path:
    """Write the report to ``output`` and (``log``) attach it to the search's parent run as ``report/<name>``."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(load_inputs(mlflow, search, tolerances)), encoding="utf-8")
    if log:
        mlflow.log_artifact(search.run_id, str(path), "report")
    return path
