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

from prunetune.analysis import plots, tables
from prunetune.analysis.query import Search, read_artifact, search_runs_frame
from prunetune.search.store import TrackingClient

from prunetune.libs import pd, yaml
from prunetune.records import (
    LAYER_SCORES_ARTIFACT,
    MAX_DROP_ARTIFACT,
    RANKED_BY,
    SPEC_ARTIFACT,
    LayerScores,
    budget_unit,
    counted,
    in_budget_unit,
)

__all__ = ["render", "write_report"]


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
    max_drop: dict[str, Any] | None = None  # a max-drop's answer (MAX_DROP_ARTIFACT), when the search was one


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
            cells.append(f"<td class='{'num' if number else 'text'}'>{html.escape(tables.cell(value))}</td>")
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


def _points(value: float | None, relative: bool | None = None, signed: bool = False) -> str:
    """A drop or tolerance in the budget's unit, with it named when ``relative`` is given (a table's header names
    it once instead)."""
    return "n/a" if value is None else in_budget_unit(value, relative, signed=signed)


def _max_drop_rows(answer: dict[str, Any]) -> pd.DataFrame:
    """A max-drop's answer per tolerance as the terminal gives it: depth, verdict, mean drop and its interval, the
    kept layers and training, the confidently-within finding, and the model."""
    rows = []
    for item in answer["tolerances"]:
        found, sure, model = item["answer"], item["confidently_within"], item.get("model")
        row: dict[str, Any] = {"tolerance": _points(item["tolerance"])}
        if found is None:
            rows.append(row | {"layers dropped": 0, "verdict": "none within"})
            continue
        low, high = found["interval"]
        rows.append(
            row
            | {
                "layers dropped": found["layers_dropped"],
                "verdict": found["verdict"],
                "mean drop": _points(found["drop"], signed=True),
                "interval": f"[{_points(low, signed=True)}, {_points(high, signed=True)}]"
                if low is not None
                else "one seed: none",
                "kept layers": str(found["kept_layers"]),
                "strategy": found["strategy"],
                "learning rate": f"{found['learning_rate']:.1e}",
                "epochs": str(found["epochs"]),
                "seeds": ", ".join(map(str, found["seeds"])),
                "confidently within": "none"
                if sure is None
                else f"{counted(sure['layers_dropped'], 'layer')} ({_points(sure['drop'], signed=True)})",
                "model": "not saved" if not model else model["path"],
            }
        )
    return pd.DataFrame(rows)


def _max_drop_answer(answer: dict[str, Any]) -> str:
    relative = bool(answer.get("relative", False))
    reference = answer["reference"]
    parts = []
    for item in answer["tolerances"]:
        found = item["answer"]
        budget = in_budget_unit(item["tolerance"], relative)
        parts.append(
            f"within {budget}: <b>none</b>"
            if found is None
            else f"within {budget}: <b>{counted(found['layers_dropped'], 'layer')}</b> ({found['verdict']}, "
            f"mean drop {_points(found['drop'], relative, signed=True)})"
        )
    return (
        f"max-drop's answer, each re-checked on seeds {', '.join(map(str, answer['seeds']))} against the tuned "
        f"reference (lr {reference['learning_rate']:.1e}, mean {reference['score']:.4f}): " + "; ".join(parts) + ". "
        "<i>within</i>: the whole interval under the tolerance; <i>borderline</i>: only the mean."
    )


def _taught(row: Any) -> str:
    alpha = row.get("distill_alpha")
    return f", distilled from the tuned reference (alpha {alpha:g})" if alpha == alpha and alpha else ""


def _spec_text(spec: dict[str, Any]) -> str:
    return html.escape(yaml.safe_dump(spec, sort_keys=False)) if spec else "not recorded"


def _tolerances(inputs: ReportInputs) -> tuple[float, ...]:
    """A max-drop's own tolerances, else those asked for (``--tolerance``)."""
    if inputs.max_drop:
        return tuple(sorted(float(item["tolerance"]) for item in inputs.max_drop["tolerances"]))
    return inputs.tolerances


def _in_points(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-tolerance table as a person reads it: tolerances and drops in points (or % of the reference)."""
    shown = frame.drop(columns=["run_id"], errors="ignore").copy()
    for column in ("tolerance", "drop"):
        if column in shown:
            shown[column] = [
                "" if value != value else _points(value, signed=column == "drop") for value in shown[column]
            ]
    return shown


def render(inputs: ReportInputs) -> str:
    """The report as one HTML document."""
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
        *(
            [
                f"<p class='answer'>{_max_drop_answer(inputs.max_drop)}</p>",
                "<h2>max-drop: the answer per tolerance</h2>",
                f"<p>Tolerances and drops in {budget_unit(relative)}; the interval is the mean drop's over the "
                "seeds, at the run's level.</p>",
                _table(_max_drop_rows(inputs.max_drop)),
                "<h2>The search's own trials per tolerance (one seed, before the re-checks)</h2>",
            ]
            if inputs.max_drop
            else [
                f"<p class='answer'>{_answer(inputs, tolerance, relative)}</p>",
                "<h2>Maximum droppable layers per tolerance</h2>",
            ]
        ),
        f"<p>Tolerances and drops in {budget_unit(relative)}.</p>",
        _table(_in_points(tables.max_droppable(frame, _tolerances(inputs)))),
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
    spec_text = read_artifact(mlflow, search, SPEC_ARTIFACT)
    scores_text = read_artifact(mlflow, search, LAYER_SCORES_ARTIFACT)
    max_drop_text = read_artifact(mlflow, search, MAX_DROP_ARTIFACT)
    return ReportInputs(
        search=search,
        frame=search_runs_frame(mlflow, search),
        spec=json.loads(spec_text) if spec_text else None,
        scores=LayerScores.from_json(scores_text) if scores_text else None,
        tolerances=tuple(sorted(tolerances)),
        max_drop=json.loads(max_drop_text) if max_drop_text else None,
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
