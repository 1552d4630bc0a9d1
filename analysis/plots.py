"""The plots of the research, as matplotlib figures of a trials frame (or of a model's layer scores).

Each function returns a ``Figure``; :func:`save` writes it as PNG or SVG. The Agg backend is used so
plots render on a head node or in CI with no display.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunetune.analysis.tables import finished, reference_score

from prunetune.libs import np, pd, plt, plt_ticker
from prunetune.records import LayerScores

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "all_figures", "dropped_block", "layer_scores", "pareto", "pareto_front", "save", "score_vs_dropped", "window_grid",
    "window_heatmap"
]  # fmt: skip


# Read by matplotlib when it is first imported (prunetune.libs imports it on first use): no display is needed.
os.environ["MPLBACKEND"] = "Agg"


def save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` (the suffix, .png or .svg, picks the format) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(figure)
    return path


def _empty(title: str, why: str) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 2))
    axes.axis("off")
    axes.set_title(title)
    axes.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    return figure


def score_vs_dropped(frame: pd.DataFrame, tolerance: float, relative: bool = False) -> Figure:
    """Validation score against layers dropped, one series per strategy, the budget as a band under the reference."""
    trials = finished(frame)
    reference = reference_score(frame)
    title = "Score vs layers dropped"
    if trials.empty:
        return _empty(title, "no complete trials yet")
    figure, axes = plt.subplots(figsize=(7, 4.5))
    if reference is not None:
        floor = reference * (1 - tolerance) if relative else reference - tolerance
        axes.axhspan(floor, reference, color="tab:green", alpha=0.12, label=f"within {tolerance:g} of the reference")
        axes.axhline(reference, color="tab:green", linewidth=1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for number, (strategy, group) in enumerate(trials.groupby("strategy", sort=True)):
        colour = colours[number % len(colours)]
        axes.scatter(group["layers_dropped"].astype(float), group["val_score"], alpha=0.35, s=18, color=colour)
        best = group.groupby("layers_dropped")["val_score"].max()  # the line joins each depth's best trial
        axes.plot(best.index.astype(float), best.values, marker="o", color=colour, label=strategy)
    axes.set_xlabel("layers dropped")
    axes.set_ylabel("validation score")
    axes.set_title(title)
    axes.xaxis.set_major_locator(plt_ticker.MaxNLocator(integer=True))
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def pareto_front(frame: pd.DataFrame, x: str = "layers_kept") -> pd.DataFrame:
    """The complete trials no other beats on both axes: higher score with no more of ``x`` (layers, latency)."""
    trials = finished(frame).dropna(subset=[x]).sort_values([x, "val_score"], ascending=[True, False])
    front, best = [], -np.inf
    for _, row in trials.iterrows():
        if row["val_score"] > best:
            front.append(row)
            best = row["val_score"]
    return pd.DataFrame(front)


def pareto(frame: pd.DataFrame, x: str = "layers_kept") -> Figure:
    """Every complete trial on score vs ``x``, the Pareto front drawn as a step line."""
    trials = finished(frame)
    title = f"Pareto front: score vs {x.replace('_', ' ')}"
    if trials.empty or x not in trials or trials[x].isna().all():
        return _empty(title, f"no complete trials with {x} yet")
    front = pareto_front(frame, x)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter(trials[x].astype(float), trials["val_score"], alpha=0.35, s=18, label="trials")
    axes.step(front[x].astype(float), front["val_score"], where="post", color="tab:red", marker="o", label="front")
    reference = reference_score(frame)
    if reference is not None:
        axes.axhline(reference, color="tab:green", linewidth=1, label="reference")
    axes.set_xlabel(x.replace("_", " "))
    axes.set_ylabel("validation score")
    axes.set_title(title)
    if x == "layers_kept":
        axes.xaxis.set_major_locator(plt_ticker.MaxNLocator(integer=True))
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return figure


def dropped_block(kept: list[int] | None, num_layers: int) -> tuple[int, int] | None:
    """(start, size) of the dropped layers when they form one contiguous block, else None."""
    if kept is None:
        return None
    dropped = sorted(set(range(num_layers)) - set(kept))
    if not dropped or dropped[-1] - dropped[0] + 1 != len(dropped):
        return None
    return dropped[0], len(dropped)


def window_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """Best score per dropped block: rows are block sizes, columns the block's first layer."""
    trials = finished(frame).dropna(subset=["layers_kept", "layers_dropped"])
    cells: dict[tuple[int, int], float] = {}
    for _, row in trials.iterrows():
        block = dropped_block(row["kept_layers"], int(row["layers_kept"] + row["layers_dropped"]))
        if block is not None:
            cells[block] = max(cells.get(block, -np.inf), float(row["val_score"]))
    if not cells:
        return pd.DataFrame()
    total = int((trials["layers_kept"] + trials["layers_dropped"]).max())
    grid = pd.DataFrame(np.nan, index=range(1, total), columns=range(total))
    for (start, size), value in cells.items():
        grid.loc[size, start] = value
    grid.index.name, grid.columns.name = "block size", "block start"
    return grid


def window_heatmap(frame: pd.DataFrame) -> Figure:
    """Score over window start x window size (every contiguous drop: top, bottom, middle and window trials)."""
    grid = window_grid(frame)
    title = "Score by dropped block (start x size)"
    if grid.empty:
        return _empty(title, "no complete trial dropped a contiguous block yet")
    figure, axes = plt.subplots(figsize=(7, 4.5))
    image = axes.imshow(grid.values, origin="lower", cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns])
    axes.set_yticks(range(len(grid.index)), [str(i) for i in grid.index])
    low, high = np.nanmin(grid.values), np.nanmax(grid.values)
    for (i, j), value in np.ndenumerate(grid.values):
        if not np.isnan(value):
            bright = high > low and (value - low) / (high - low) > 0.6  # viridis turns yellow: dark text there
            axes.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=7, color="black" if bright else "white")
    axes.set_xlabel("first dropped layer (0 = next to the embeddings)")
    axes.set_ylabel("layers dropped")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label="best validation score")
    return figure


def layer_scores(scores: LayerScores | None) -> Figure:
    """Per-layer contribution (cosine of a layer's input and output) and the angular distance of every block."""
    title = "Layer contribution and angular distance"
    if scores is None:
        return _empty(title, "the search recorded no layer scores")
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    layers = range(scores.num_layers)
    left.bar(layers, [scores.contribution(layer) for layer in layers], color="tab:blue")
    left.set_xlabel("layer")
    left.set_ylabel("cosine(input, output)")
    left.set_title("contribution: high = the layer barely changes its input")
    left.set_ylim(0, 1)
    left.set_xticks(list(layers))
    matrix = np.array(scores.angular, dtype=float)
    size = scores.num_layers + 1
    masked = np.where(np.triu(np.ones((size, size)), k=1) > 0, matrix, np.nan)
    image = right.imshow(masked, cmap="magma_r", origin="upper")
    right.set_xlabel("to hidden state (output of layer j - 1)")
    right.set_ylabel("from hidden state i (0 = embeddings)")
    right.set_title("angular distance of block i..j-1")
    figure.colorbar(image, ax=right)
    figure.suptitle(f"{title} — {scores.model}")
    return figure


def all_figures(
    frame: pd.DataFrame,
    tolerance: float,
    scores: LayerScores | None,
    relative: bool = False,
    pareto_axis: str = "layers_kept",
) -> dict[str, Any]:
    """Every plot of the report, by file stem."""
    return {
        "score-vs-dropped": score_vs_dropped(frame, tolerance, relative),
        "pareto": pareto(frame, pareto_axis),
        "window-heatmap": window_heatmap(frame),
        "layer-scores": layer_scores(scores),
    }
