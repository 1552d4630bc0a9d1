"""Layer scores that mislead: variants of a LayerScores JSON for the replay and the simulator (``--scores``).

The search's warm start trusts the layer scores (the angular block per depth, search/space.py). On the seed table
they happen to point at the best blocks; these variants ask what the search does when they do not. Each keeps the
matrix's shape, symmetry and range, and changes only which blocks look alike. Only the angular distances change
(what the warm start and the angular-block strategy read): the cosines, which the contribution strategy reads, stay
as measured, because misled cosines make contribution drop scattered layers the tables never trained.

* ``negated``: every distance reflected within its range, ``min + max - x``: the farthest block looks closest;
* ``mirrored``: the layer order reversed (entry ``[i][j]`` takes ``[n - i][n - j]``): a block near the top looks
  like the one near the bottom;
* ``shuffled``: the off-diagonal entries permuted with ``--seed``;
* ``flat``: every entry equal: no block looks closer than another, so every tie goes to the lowest start;
* ``adversarial`` (needs ``--table``): at each depth, the block whose table mean at its best learning rate is
  worst is made the closest: the warm start picks the worst block at every depth.

    bench/misleading_scores.py --out-dir bench/results/scores   # writes <kind>.json for every kind
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from prunetune.records import LayerScores

sys.path.insert(0, str(Path(__file__).resolve().parent))  # paths, beside this script
from paths import LAYER_SCORES, shown  # noqa: E402

Matrix = tuple[tuple[float, ...], ...]
KINDS = ("negated", "mirrored", "shuffled", "flat", "adversarial")


def _off_diagonal(size: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(size) for j in range(i + 1, size)]


def _rebuild(size: int, values: dict[tuple[int, int], float], diagonal: float) -> Matrix:
    """A symmetric matrix from its upper triangle."""
    return tuple(
        tuple(diagonal if i == j else values[(min(i, j), max(i, j))] for j in range(size)) for i in range(size)
    )


def negated(matrix: Matrix) -> Matrix:
    size = len(matrix)
    cells = _off_diagonal(size)
    low, high = min(matrix[i][j] for i, j in cells), max(matrix[i][j] for i, j in cells)
    return _rebuild(size, {(i, j): low + high - matrix[i][j] for i, j in cells}, matrix[0][0])


def mirrored(matrix: Matrix) -> Matrix:
    last = len(matrix) - 1
    return tuple(tuple(matrix[last - i][last - j] for j in range(len(matrix))) for i in range(len(matrix)))


def shuffled(matrix: Matrix, seed: int) -> Matrix:
    size = len(matrix)
    cells = _off_diagonal(size)
    order = list(cells)
    random.Random(seed).shuffle(order)
    return _rebuild(size, {cell: matrix[i][j] for cell, (i, j) in zip(cells, order, strict=True)}, matrix[0][0])


def flat(matrix: Matrix) -> Matrix:
    size = len(matrix)
    cells = _off_diagonal(size)
    middle = statistics.mean(matrix[i][j] for i, j in cells)
    return _rebuild(size, dict.fromkeys(cells, middle), matrix[0][0])


def worst_blocks(table: Path, num_layers: int) -> dict[int, int]:
    """Per depth, the start of the contiguous dropped block whose best learning rate's seed mean is lowest."""
    from replay import load_table, seed_means  # the table read as the replay reads it

    loaded = load_table(table)
    best: dict[tuple[int, int], float] = {}  # (count, start) -> the block's mean at its best learning rate
    for point, mean in seed_means(loaded).items():
        config = loaded.configs[point]
        if config.startswith("window:"):
            _, start, count = config.split(":")
            block = (int(count), int(start))
            best[block] = max(best.get(block, mean), mean)
    worst: dict[int, int] = {}
    for count in range(1, num_layers):
        blocks = {start: score for (c, start), score in best.items() if c == count}
        if blocks:
            worst[count] = min(blocks, key=lambda start: blocks[start])
    return worst


def adversarial(scores: LayerScores, table: Path) -> LayerScores:
    """The angular distances re-ranked so that at each depth the table's worst block is the closest (its distance
    the depth's smallest, every other block's raised just above it); the cosines as measured."""
    n = scores.num_layers
    angular = [list(row) for row in scores.angular]
    for count, start in worst_blocks(table, n).items():
        blocks = [(s, s + count) for s in range(n - count + 1)]
        low = min(angular[i][j] for i, j in blocks)
        for i, j in blocks:
            value = low if (i, j) == (start, start + count) else max(angular[i][j], low) + 1e-3
            angular[i][j] = angular[j][i] = value
    return replace(scores, angular=tuple(tuple(row) for row in angular))


def variant(scores: LayerScores, kind: str, seed: int = 0, table: Path | None = None) -> LayerScores:
    """``scores`` misleading in the way ``kind`` names (one of :data:`KINDS`)."""
    if kind == "adversarial":
        if table is None:
            raise ValueError("the adversarial variant needs the table whose worst blocks it points at (--table)")
        return adversarial(scores, table)
    change: dict[str, Callable[[Matrix], Matrix]] = {
        "negated": negated,
        "mirrored": mirrored,
        "shuffled": lambda m: shuffled(m, seed),
        "flat": flat,
    }
    if kind not in change:
        raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    return replace(scores, angular=change[kind](scores.angular))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scores", type=Path, default=LAYER_SCORES, help="the measured LayerScores JSON")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--seed", type=int, default=0, help="the shuffled variant's permutation")
    parser.add_argument("--table", type=Path, default=None, help="the adversarial variant's table")
    parser.add_argument("--out-dir", type=Path, required=True)
    args = parser.parse_args()
    scores = LayerScores.from_json(args.scores.read_text())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        if kind == "adversarial" and args.table is None:
            print("adversarial: skipped (give --table)")
            continue
        path = args.out_dir / f"{kind}.json"
        path.write_text(json.dumps(json.loads(variant(scores, kind, args.seed, args.table).to_json()), indent=1) + "\n")
        print(f"{kind}: wrote {shown(path)}")


if __name__ == "__main__":
    main()
