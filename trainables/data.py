"""Task data: classification texts with labels, STS sentence pairs with scores, NLI pairs or triplets.

Sources: a preset (``indicnews:<language>:<shc|lpc|ldc>``, ``stsb:en``, ``stsb:mr``, ``glue:<task>``),
a local directory of split files (CSV, TSV, JSONL, Parquet) or a Hugging Face hub data set id.
Presets read a local copy from ``data_dir`` / ``$PRUNETUNE_DATA_DIR`` when it holds one, else their
public source (GitHub CSVs, the hub).

Nothing is dropped silently: a malformed row raises :class:`DataError` naming the file, the line
and the problem, unless ``on_bad_row="skip"``, which skips it and counts it in the returned
:class:`LoadReport`. Rows that repeat the header (IndicNews Marathi has some) are always skipped
and counted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunetune.trainables.config import DataConfig

from prunetune.errors import PrunetuneError

EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
TEXT_COLUMNS = ("text", "Text", "sentence", "sentence1", "headline", "content")
PAIR_COLUMNS = ("text_pair", "sentence2")
LABEL_COLUMNS = ("label", "labels", "Label", "class", "category")
SCORE_COLUMNS = ("score", "similarity", "label")
INDICNEWS_REPO = "https://raw.githubusercontent.com/l3cube-pune/indic-nlp/main/L3Cube-IndicNews"
STSB_MR_REPO = "https://raw.githubusercontent.com/l3cube-pune/MarathiNLP/main/STSb-translated/marathi"


class DataError(PrunetuneError, ValueError):
    """Data that cannot be read as the task needs: names the file, the line and the fix."""


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


@dataclass(frozen=True)
class Source:
    """A resolved data source: files per split (local or downloaded) or a hub data set."""

    files: dict[str, str] = field(default_factory=dict)
    file_format: str | None = None  # None: by extension; "stsb": the STS Benchmark TSV layout
    hub_id: str | None = None
    hub_config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # role -> column name


# ---------------------------------------------------------------- resolving sources


def data_dir(config: DataConfig) -> Path | None:
    root = config.data_dir or os.environ.get("PRUNETUNE_DATA_DIR")
    return Path(root).expanduser() if root else None


def resolve(config: DataConfig) -> Source:
    source = config.source
    if source.startswith("indicnews:"):
        return _indicnews(config)
    if source.startswith("stsb:"):
        return _stsb(config)
    if source.startswith("glue:"):
        return _glue(config)
    path = Path(source).expanduser()
    if path.is_dir():
        return Source(files=_split_files(path))
    if path.is_file():
        raise DataError(
            f"{source} is a single file: point data.source at the directory that holds its "
            "train/validation(/test) files, named train.csv, validation.csv, …"
        )
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        name, _, hub_config = source.partition(":")
        return Source(hub_id=name, hub_config=hub_config or None)
    raise DataError(
        f"data source {source!r} is neither a preset (indicnews:<language>:<shc|lpc|ldc>, stsb:en, stsb:mr, "
        "glue:<task>), an existing directory, nor a hub id (owner/name)"
    )


def _split_files(directory: Path) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        stem, ext = path.stem.lower(), path.suffix.lower()
        if ext not in EXTENSIONS:
            continue
        for split, aliases in SPLIT_ALIASES.items():
            if stem in aliases or any(stem.startswith(f"{a}_") or stem.endswith(f"_{a}") for a in aliases):
                files.setdefault(split, str(path))
        files.setdefault(stem, str(path))  # any other split, by its own name
    if not files:
        raise DataError(f"{directory} holds no data files ({', '.join(EXTENSIONS)})")
    return files


def _indicnews(config: DataConfig) -> Source:
    parts = config.source.split(":")
    if len(parts) != 3 or parts[2].lower() not in ("shc", "lpc", "ldc"):
        raise DataError(f"{config.source!r}: write indicnews:<language>:<shc|lpc|ldc>, e.g. indicnews:marathi:shc")
    language, task = parts[1].lower(), parts[2].lower()
    local = data_dir(config)
    if local is not None and (local / f"indicnews-{language}-{task}").is_dir():
        source = Source(files=_split_files(local / f"indicnews-{language}-{task}"))
    else:
        lang, upper = language.capitalize(), task.upper()
        files = {}
        for split, names in (
            ("train", ("Train", "train")),
            ("validation", ("Valid", "valid")),
            ("test", ("Test", "test")),
        ):
            # The repository names its files two ways: English_train_shc.csv and Marathi_SHC_Train.csv.
            urls = [f"{INDICNEWS_REPO}/{lang}/{upper}/{lang}_{upper}_{names[0]}.csv"]
            urls.append(f"{INDICNEWS_REPO}/{lang}/{upper}/{lang}_{names[1]}_{task}.csv")
            files[split] = " ".join(urls)
        source = Source(files=files)
    # English uses text,labels; the other languages Text,Label: found by the common names.
    return source


def _stsb(config: DataConfig) -> Source:
    language = config.source.split(":", 1)[1].lower()
    folders = {"en": "stsb-english", "english": "stsb-english", "mr": "stsb-marathi", "marathi": "stsb-marathi"}
    if language not in folders:
        raise DataError(f"{config.source!r}: STS Benchmark presets are stsb:en and stsb:mr")
    columns = {"text": "sentence1", "text_pair": "sentence2", "label": "score"}
    local = data_dir(config)
    if local is not None and (local / folders[language]).is_dir():
        return Source(files=_split_files(local / folders[language]), file_format="stsb", columns=columns)
    if folders[language] == "stsb-english":
        return Source(hub_id="mteb/stsbenchmark-sts", columns=columns)
    split_files = {
        s: f"{STSB_MR_REPO}/sts-{n}-mr.tsv" for s, n in (("train", "train"), ("validation", "dev"), ("test", "test"))
    }
    return Source(files=split_files, file_format="stsb", columns=columns)


GLUE_COLUMNS = {
    "rte": ("sentence1", "sentence2"),
    "mrpc": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"),
    "wnli": ("sentence1", "sentence2"),
    "qnli": ("question", "sentence"),
    "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"),
    "sst2": ("sentence", None),
    "cola": ("sentence", None),
}


def _glue(config: DataConfig) -> Source:
    task = config.source.split(":", 1)[1].lower()
    if task not in GLUE_COLUMNS:
        raise DataError(f"{config.source!r}: GLUE tasks are {', '.join(sorted(GLUE_COLUMNS))}")
    text, pair = GLUE_COLUMNS[task]
    columns = {"text": text, "label": "label"} | ({"text_pair": pair} if pair else {})
    local = data_dir(config)
    if local is not None and (local / f"glue-{task}").is_dir():
        return Source(files=_split_files(local / f"glue-{task}"), columns=columns)
    return Source(hub_id="nyu-mll/glue", hub_config=task, columns=columns)


# ---------------------------------------------------------------- reading rows


def _download(urls: str) -> Path:
    """The first of the space-separated ``urls`` that answers, cached under ~/.cache/prunetune/data."""
    cache = Path(os.environ.get("PRUNETUNE_CACHE_DIR") or Path.home() / ".cache" / "prunetune") / "data"
    errors = []
    for url in urls.split():
        target = cache / hashlib.sha256(url.encode()).hexdigest()[:16] / url.rsplit("/", 1)[-1]
        if target.exists():
            return target
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                body = response.read()
        except OSError as err:
            errors.append(f"{url}: {err}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then renamed: a reader (another trial on this node) never sees half a file.
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_bytes(body)
        os.replace(partial, target)
        return target
    raise DataError(
        "could not download the data set: "
        + "; ".join(errors)
        + ". Without network access, set PRUNETUNE_DATA_DIR (or data.data_dir) to a directory that holds it."
    )


def _local(path_or_urls: str) -> Path:
    return _download(path_or_urls) if path_or_urls.startswith(("http://", "https://")) else Path(path_or_urls)


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
        import pandas as pd

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
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty")
        header = [h.strip() for h in header]
        for row in reader:
            location = f"{path}:{reader.line_num}"
            if [c.strip() for c in row] == header:
                yield location, None  # a repeated header
                continue
            if len(row) != len(header):
                yield location, {"__problem__": f"{len(row)} fields where the header has {len(header)}"}
                continue
            yield location, dict(zip(header, row, strict=True))


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
    import datasets

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
    path = _local(source.files[split])
    return str(path), read_rows(path, source.file_format)


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
    return TaskData(build(train), validation, eval_split(config.test_split), label_names, report)


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
