"""Where a data set lives: a preset, a local directory of split files or a hub id, resolved to a :class:`Source`.

Presets (``indicnews:<language>:<shc|lpc|ldc>``, ``stsb:en``, ``stsb:mr``, ``glue:<task>``) read a local copy
from ``data_dir`` / ``$PRUNETUNE_DATA_DIR`` when it holds one, else their public source (GitHub CSVs, the
hub); a download is cached under ``~/.cache/prunetune/data``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prunetune.trainables.config import DataConfig
from prunetune.trainables.pinned import INDICNEWS_COMMIT, INDICNEWS_SHA256

from prunetune.errors import PrunetuneError

EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
# Pinned to a commit, not a branch: what a preset downloads cannot change under it.
INDICNEWS_REPO = f"https://raw.githubusercontent.com/l3cube-pune/indic-nlp/{INDICNEWS_COMMIT}/L3Cube-IndicNews"
# What each downloaded file must hash to, where known (a file that does not is refused).
PINNED_SHA256 = {f"{INDICNEWS_REPO}/{path}": digest for path, digest in INDICNEWS_SHA256.items()}
STSB_MR_REPO = "https://raw.githubusercontent.com/l3cube-pune/MarathiNLP/main/STSb-translated/marathi"


class DataError(PrunetuneError, ValueError):
    """Data that cannot be read as the task needs: names the file, the line and the fix."""


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


# ---------------------------------------------------------------- fetching


def download(urls: str) -> Path:
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
        expected, found = PINNED_SHA256.get(url), hashlib.sha256(body).hexdigest()
        if expected is not None and found != expected:
            raise DataError(
                f"{url}: its SHA-256 is {found}, not the {expected} it has at the pinned commit; refusing a changed "
                "or tampered file (download it yourself and set PRUNETUNE_DATA_DIR to trust a copy)"
            )
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


def local_path(path_or_urls: str) -> Path:
    return download(path_or_urls) if path_or_urls.startswith(("http://", "https://")) else Path(path_or_urls)
