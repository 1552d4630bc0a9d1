"""Where the benchmarks' inputs live in the repository: one place for every script that reads them."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The seed table (bench/tables/README.md): every kept set of all-MiniLM-L6-v2 x 5 learning rates x seeds 0 and 1 on
# IndicNews English headlines, measured on a GPU. The replay, the simulator and bench/seeds.py read it.
SEED_TABLE = REPO / "bench" / "tables" / "minilm-l6-indicnews-en-lr-seeds.csv"
# The layer scores of the table's setting, which the search computes before its trials (benchmark 1).
LAYER_SCORES = REPO / "bench" / "results" / "grid-minilm-indicnews-en-scores.json"
# The second task's table (bench/tables/README.md): all-MiniLM-L6-v2 on STS-B English sentence similarity, Spearman
# on dev, the same configurations; and its layer scores (prunetune scores on 256 STS-B training sentences, 48 tokens).
STSB_TABLE = REPO / "bench" / "tables" / "minilm-l6-stsb-en-lr-seeds.csv"
STSB_LAYER_SCORES = REPO / "bench" / "results" / "minilm-stsb-en-scores.json"


def shown(path: Path) -> str:
    """``path`` as a report names it: relative to the repository when inside it."""
    resolved = path.resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else str(resolved)
