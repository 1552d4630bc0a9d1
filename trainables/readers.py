"""Rows out of files and hub data sets: ``(location, row)`` pairs, a location being ``file:line``.

CSV/TSV (header first), JSON lines, Parquet, the STS Benchmark TSV layout, and Hugging Face hub splits
(class labels as their names). A row that cannot be read carries ``__problem__``; a repeated header
row is ``None``. What to do with either is the task data's decision (:mod:`.data`).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prunetune.trainables.sources import EXTENSIONS, DataError, Source, local_path

from prunetune.config import DataConfig
from prunetune.libs import datasets, pd

__all__ = ["read_rows", "split_rows"]


def read_rows(path: Path, file_format: str | None = None) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Yield ``(location, row)`` for every data row of a file; repeated header rows yield ``(location, None)``."""
    ext = path.suffix.lower()
    if file_format == "stsb":
        yield from _read_stsb(path)
    elif ext in (".csv", ".tsv"):
        yield from _read_delimited(path, "\t" if ext == ".tsv" else ",")
    elif ext in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield f"{path}:{number}", json.loads(line)
                    except json.JSONDecodeError as err:
                        raise DataError(f"{path}:{number}: not a JSON object per line ({err})") from None
    elif ext == ".parquet":
        for number, row in enumerate(pd.read_parquet(path).to_dict("records"), start=1):
            yield f"{path} row {number}", row
    else:
        raise DataError(f"{path}: unsupported file type {ext!r}; use one of {', '.join(EXTENSIONS)}")


def _read_delimited(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
    # Long-document classification has very long fields; the csv module's limit is process-wide, so it is
    # raised only while this file is read.
    previous = csv.field_size_limit(sys.maxsize)
    try:
        yield from _delimited_rows(path, delimiter)
    finally:
        csv.field_size_limit(previous)


def _delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
    last_read = 1
    try:
        for line, item in _delimited(path, delimiter):
            last_read = line
            yield item
    except UnicodeDecodeError as err:
        line = _first_undecodable_line(path, after=last_read)
        raise DataError(
            f"{path}:{line}: not UTF-8 text ({err.reason}); re-save the file as UTF-8 (e.g. iconv -t UTF-8)"
        ) from None


def _first_undecodable_line(path: Path, after: int) -> int:
    """The line a decoding error is on: the reader decodes ahead by blocks, so its own count lags behind."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number > after:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return number
    return after + 1


def _delimited(path: Path, delimiter: str) -> Iterator[tuple[int, tuple[str, dict[str, Any] | None]]]:
    """The rows of ``_delimited_rows``, each with the last line read (where a decoding error is reported)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty")
        header = [h.strip() for h in header]
        for row in reader:
            location = f"{path}:{reader.line_num}"
            if [c.strip() for c in row] == header:
                yield reader.line_num, (location, None)  # a repeated header
            elif len(row) != len(header):
                problem = f"{len(row)} fields where the header has {len(header)}"
                yield reader.line_num, (location, {"__problem__": problem})
            else:
                yield reader.line_num, (location, dict(zip(header, row, strict=True)))


def _read_stsb(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    # No header, quoting off; fields 4-6 are score, sentence1, sentence2 (some lines carry extra trailing fields).
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").rstrip("\r").split("\t")
            if not line.strip():
                continue
            if len(fields) < 7:
                yield f"{path}:{number}", {"__problem__": f"{len(fields)} fields where STS Benchmark lines have 7"}
                continue
            yield f"{path}:{number}", {"score": fields[4], "sentence1": fields[5], "sentence2": fields[6]}


def _hub_rows(source: Source, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        dataset = datasets.load_dataset(source.hub_id, source.hub_config, split=split)
    except Exception as err:  # the hub raises many types; the message is what helps
        raise DataError(
            f"could not load {source.hub_id}{':' + source.hub_config if source.hub_config else ''} "
            f"split {split!r} from the Hugging Face hub: {err}. Offline, point data.source at a local directory."
        ) from None
    names = {}
    for column, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):
            names[column] = feature.names
    for number, row in enumerate(dataset, start=1):
        for column, label_names in names.items():
            if isinstance(row.get(column), int) and row[column] >= 0:
                row[column] = label_names[row[column]]
        yield f"{source.hub_id} {split} row {number}", row


def split_rows(config: DataConfig, source: Source, split: str) -> tuple[str, Iterator[tuple[str, Any]]]:
    """A description of where split ``split`` comes from, and its rows."""
    if source.hub_id is not None:
        return f"{source.hub_id} [{split}]", _hub_rows(source, split)
    if split not in source.files:
        raise DataError(
            f"{config.source} has no {split!r} split (it has {', '.join(sorted(source.files))}): "
            "set data.train_split / data.validation_split / data.test_split to one it has"
        )
    path = local_path(source.files[split])
    return str(path), read_rows(path, source.file_format)
