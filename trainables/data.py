"""Task data: classification texts with labels, STS sentence pairs with scores, NLI pairs or triplets.

Where the data lives is :mod:`.sources`; reading rows from files and the hub is :mod:`.readers`; this module
makes task data of the rows: columns picked, labels ordered, bad rows reported, samples drawn.

Nothing is dropped silently: a malformed row raises :class:`DataError` naming the file, the line
and the problem, unless ``on_bad_row="skip"``, which skips it and counts it in the returned
:class:`LoadReport`. Rows that repeat the header (IndicNews Marathi has some) are always skipped
and counted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from prunetune.trainables.readers import split_rows
from prunetune.trainables.sources import DataError, Source, resolve

from prunetune.config import DataConfig

__all__ = ["DataError", "LoadReport", "TaskData", "TextSplit", "load_labelled", "load_scored_pairs", "sample_texts"]

TEXT_COLUMNS = ("text", "Text", "sentence", "sentence1", "headline", "content")
PAIR_COLUMNS = ("text_pair", "sentence2")
LABEL_COLUMNS = ("label", "labels", "Label", "class", "category")
SCORE_COLUMNS = ("score", "similarity", "label")


@dataclass
class LoadReport:
    """What loading skipped, by problem, with where: printed by jobs and recorded with their metrics."""

    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, problem: str, location: str) -> None:
        self.skipped.setdefault(problem, []).append(location)

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def summary(self) -> str:
        parts = [f"{len(locs)} {problem} (e.g. {', '.join(locs[:3])})" for problem, locs in self.skipped.items()]
        return "skipped " + "; ".join(parts) if parts else "skipped nothing"


# ---------------------------------------------------------------- task data


@dataclass(frozen=True)
class TextSplit:
    """Texts (optionally pairs) with a target: a label id (classification) or a float score (STS)."""

    texts: tuple[str, ...]
    pairs: tuple[str, ...] | None
    targets: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class TaskData:
    train: TextSplit
    validation: TextSplit
    test: TextSplit | None
    label_names: tuple[str, ...] | None  # classification / NLI labels; None for scores
    report: LoadReport


def _pick(columns: Sequence[str], wanted: str | None, candidates: Sequence[str], role: str, where: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"{where}: no column {wanted!r} for the {role}; its columns are {list(columns)}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise DataError(f"{where}: no {role} column among {list(columns)}; name it with data.{role}_column")


def _handle_bad(config: DataConfig, report: LoadReport, location: str, problem: str) -> None:
    if config.on_bad_row == "skip":
        report.skip(problem, location)
        return
    raise DataError(
        f"{location}: {problem}. Fix the file, or set data.on_bad_row=skip to skip such rows "
        "(they are counted and reported)"
    )


def _read_split(
    config: DataConfig, source: Source, split: str, kind: str, report: LoadReport, pair_required: bool
) -> list[tuple[str, str, str | None, Any]]:
    """Rows of one split as ``(location, text, pair, raw_target)`` after the bad-row policy."""
    where, rows = split_rows(config, source, split)
    out: list[tuple[str, str, str | None, Any]] = []
    text_col = pair_col = label_col = None
    repeated_headers = 0
    for location, row in rows:
        if row is None:
            repeated_headers += 1
            continue
        if "__problem__" in row:
            _handle_bad(config, report, location, row["__problem__"])
            continue
        if text_col is None:
            columns = list(row)
            text_col = _pick(columns, config.text_column or source.columns.get("text"), TEXT_COLUMNS, "text", where)
            wanted_pair = config.text_pair_column or source.columns.get("text_pair")
            if wanted_pair or pair_required:
                pair_col = _pick(columns, wanted_pair, PAIR_COLUMNS, "text_pair", where)
            candidates = SCORE_COLUMNS if kind == "score" else LABEL_COLUMNS
            label_col = _pick(columns, config.label_column or source.columns.get("label"), candidates, "label", where)
        text = "" if row.get(text_col) is None else str(row[text_col]).strip()
        pair = None if pair_col is None else ("" if row.get(pair_col) is None else str(row[pair_col]).strip())
        target = row.get(label_col)
        target = "" if target is None else str(target).strip()
        if not text:
            _handle_bad(config, report, location, f"empty text in column {text_col!r}")
        elif pair is not None and not pair:
            _handle_bad(config, report, location, f"empty text in column {pair_col!r}")
        elif not target:
            _handle_bad(config, report, location, f"empty {kind} in column {label_col!r}")
        else:
            out.append((location, text, pair, target))
    if repeated_headers:
        report.skip("rows repeating the header", f"{where} ({repeated_headers} rows)")
    if not out:
        raise DataError(f"{where}: no usable rows for split {split!r}")
    return out


def _sample(rows: list[Any], limit: int | None, seed: int) -> list[Any]:
    # A seeded random sample, not the first rows: files are often sorted by label.
    if limit is None or limit >= len(rows):
        return rows
    picked = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in picked]


def _label_order(labels: set[str]) -> tuple[str, ...]:
    # Deterministic: numeric labels by value, others alphabetically.
    if all(label.lstrip("-").isdigit() for label in labels):
        return tuple(sorted(labels, key=int))
    return tuple(sorted(labels))


def load_labelled(config: DataConfig, *, pairs: bool = False) -> TaskData:
    """Classification (or NLI-with-labels) data; label ids follow :func:`_label_order` of the training labels."""
    source = resolve(config)
    report = LoadReport()
    train = _sample(
        _read_split(config, source, config.train_split, "label", report, pairs),
        config.max_train_rows,
        config.sample_seed,
    )
    label_names = _label_order({row[3] for row in train})
    if len(label_names) < 2:
        raise DataError(
            f"{config.source} [{config.train_split}] has one label only ({label_names[0]!r}): nothing to classify"
        )
    ids = {name: i for i, name in enumerate(label_names)}

    def build(rows: list[tuple[str, str, str | None, Any]]) -> TextSplit:
        kept = []
        for location, text, pair, label in rows:
            if label not in ids:
                _handle_bad(
                    config, report, location, f"label {label!r} does not occur in the training split {sorted(ids)}"
                )
            else:
                kept.append((text, pair, ids[label]))
        has_pairs = bool(kept) and kept[0][1] is not None
        return TextSplit(
            tuple(t for t, _, _ in kept),
            tuple(p or "" for _, p, _ in kept) if has_pairs else None,  # a pair task: every row has one
            tuple(y for _, _, y in kept),
        )

    def eval_split(split: str | None) -> TextSplit | None:
        if split is None:
            return None
        rows = _read_split(config, source, split, "label", report, pairs)
        return build(_sample(rows, config.max_eval_rows, config.sample_seed))

    validation = eval_split(config.validation_split)
    assert validation is not None
    test = eval_split(config.test_split)
    for split, rows in ((config.validation_split, validation), (config.test_split, test)):
        if rows is not None and not rows.texts:
            raise DataError(
                f"{config.source} [{split}] has no usable rows ({report.summary()}): its labels must occur in "
                f"the training split {list(label_names)}"
            )
    return TaskData(build(train), validation, test, label_names, report)


def load_scored_pairs(config: DataConfig) -> TaskData:
    """STS-style sentence pairs with similarity scores, scaled to [0, 1] (STS Benchmark scores are 0-5)."""
    source = resolve(config)
    report = LoadReport()

    def read(split: str | None, limit: int | None) -> list[tuple[str, str, float]] | None:
        if split is None:
            return None
        out = []
        for location, text, pair, raw in _sample(
            _read_split(config, source, split, "score", report, True), limit, config.sample_seed
        ):
            try:
                out.append((text, pair or "", float(raw)))
            except ValueError:
                _handle_bad(config, report, location, f"score {raw!r} is not a number")
        return out

    train = read(config.train_split, config.max_train_rows)
    validation = read(config.validation_split, config.max_eval_rows)
    test = read(config.test_split, config.max_eval_rows)
    assert train is not None and validation is not None
    scale = 5.0 if max(score for _, _, score in train) > 1.0 else 1.0

    def build(rows: list[tuple[str, str, float]] | None) -> TextSplit | None:
        if rows is None:
            return None
        return TextSplit(tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] / scale for r in rows))

    built_train, built_validation = build(train), build(validation)
    assert built_train is not None and built_validation is not None
    return TaskData(built_train, built_validation, build(test), None, report)


def sample_texts(config: DataConfig, rows: int) -> tuple[str, ...]:
    """A seeded sample of ``rows`` non-empty texts of the training split (for layer scores).

    Only texts matter here, so rows with a missing label are still usable; the sample is the
    same wherever it is drawn (CLI, job, search driver), which keeps the scores cache shared.
    """
    source = resolve(config)
    where, found = split_rows(config, source, config.train_split)
    texts: list[str] = []
    column = None
    for _, row in found:
        if row is None or "__problem__" in row:
            continue
        if column is None:
            column = _pick(list(row), config.text_column or source.columns.get("text"), TEXT_COLUMNS, "text", where)
        text = str(row.get(column) or "").strip()
        if text:
            texts.append(text)
    if not texts:
        raise DataError(f"{where}: no non-empty texts to score layers with")
    return tuple(_sample(texts, rows, config.sample_seed))
