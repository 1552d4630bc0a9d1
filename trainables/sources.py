"""Where a data set lives: a preset, a local directory of split files or a hub id, resolved to a :class:`Source`.

Presets (``indicnews:<language>:<shc|lpc|ldc>``, ``stsb:en``, ``stsb:mr``, ``glue:<task>``) read a local copy
from the data dir when it holds one (``data.data_dir``, else ``$PRUNETUNE_DATA_DIR``, else
``~/.cache/prunetune/data``), else their public source (GitHub CSVs, the hub); a download is cached in that
same cache folder, and :func:`fetch` (``prunetune data fetch``) makes a preset's local copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prunetune.trainables.pinned import INDICNEWS_COMMIT, INDICNEWS_SHA256, STSB_MR_COMMIT, STSB_MR_SHA256

from prunetune.config import DataConfig
from prunetune.errors import PrunetuneError

__all__ = [
    "DataError", "DownloadError", "EXTENSIONS", "INDICNEWS_REPO", "PINNED_SHA256", "PRESET_NAMES", "Source",
    "cache_root", "data_dir", "default_data_dir", "download", "fetch", "known_preset", "local_path", "preset", "resolve"
]  # fmt: skip


EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test",),
}
# Pinned to a commit, not a branch: what a preset downloads cannot change under it.
INDICNEWS_REPO = f"https://raw.githubusercontent.com/l3cube-pune/indic-nlp/{INDICNEWS_COMMIT}/L3Cube-IndicNews"
STSB_MR_REPO = f"https://raw.githubusercontent.com/l3cube-pune/MarathiNLP/{STSB_MR_COMMIT}/STSb-translated/marathi"
# What each downloaded file must hash to, where known (a file that does not is refused).
PINNED_SHA256 = {f"{INDICNEWS_REPO}/{path}": digest for path, digest in INDICNEWS_SHA256.items()} | {
    f"{STSB_MR_REPO}/{name}": digest for name, digest in STSB_MR_SHA256.items()
}


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


# ---------------------------------------------------------------- where local copies live


def cache_root() -> Path:
    """prunetune's cache: ``$PRUNETUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/prunetune``, else ``~/.cache/prunetune``."""
    root = os.environ.get("PRUNETUNE_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "prunetune"


def default_data_dir() -> Path:
    """Where presets' local copies are looked for, and ``prunetune data fetch`` puts them:
    ``$PRUNETUNE_DATA_DIR``, else the cache's ``data`` folder (downloads are cached there too)."""
    root = os.environ.get("PRUNETUNE_DATA_DIR")
    return Path(root).expanduser() if root else cache_root() / "data"


def data_dir(config: DataConfig) -> Path:
    return Path(config.data_dir).expanduser() if config.data_dir else default_data_dir()


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A named data set: the folder of its local copy under the data dir, and where it comes from otherwise."""

    name: str
    folder: str
    remote: Source
    local_format: str | None = None  # how its local files are read (None: by extension)

    def local(self, root: Path) -> Source | None:
        """Its local copy under data dir ``root``, or None when ``root`` holds none."""
        folder = root / self.folder
        if not folder.is_dir():
            return None
        return Source(files=_split_files(folder), file_format=self.local_format, columns=self.remote.columns)


def preset(source: str) -> Preset | None:
    """The preset ``source`` names (a malformed one raises DataError), or None when it names none."""
    kind, colon, _ = source.partition(":")
    build = _PRESET_KINDS.get(kind) if colon else None
    return None if build is None else build(source)


def resolve(config: DataConfig) -> Source:
    source = config.source
    found = preset(source)
    if found is not None:
        local = found.local(data_dir(config))
        return found.remote if local is None else local
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


# The languages of L3Cube-IndicNews, each with the three tasks.
INDICNEWS_LANGUAGES = (
    "bengali", "english", "gujarati", "hindi", "kannada", "malayalam", "marathi", "odia", "punjabi", "tamil", "telugu",
)  # fmt: skip
INDICNEWS_TASKS = ("shc", "lpc", "ldc")
# Folders whose files carry another name: Bengali/SHC/Bengal_SHC_Train.csv.
_INDICNEWS_FILE_PREFIXES = {"bengali": ("Bengal",)}


def _indicnews(source: str) -> Preset:
    parts = source.split(":")
    if len(parts) != 3 or parts[2].lower() not in INDICNEWS_TASKS:
        raise DataError(f"{source!r}: write indicnews:<language>:<shc|lpc|ldc>, e.g. indicnews:marathi:shc")
    language, task = parts[1].lower(), parts[2].lower()
    if language not in INDICNEWS_LANGUAGES:
        raise DataError(f"{source!r}: IndicNews has no language {parts[1]!r}; it has {', '.join(INDICNEWS_LANGUAGES)}")
    lang, upper = language.capitalize(), task.upper()
    prefixes = (lang, *_INDICNEWS_FILE_PREFIXES.get(language, ()))
    files = {}
    for split, names in (("train", ("Train", "train")), ("validation", ("Valid", "valid")), ("test", ("Test", "test"))):
        # The repository names its files two ways: English_train_shc.csv and Marathi_SHC_Train.csv.
        urls = [f"{INDICNEWS_REPO}/{lang}/{upper}/{p}_{upper}_{names[0]}.csv" for p in prefixes]
        urls += [f"{INDICNEWS_REPO}/{lang}/{upper}/{p}_{names[1]}_{task}.csv" for p in prefixes]
        files[split] = " ".join(urls)
    # English uses text,labels; the other languages Text,Label: found by the common names.
    return Preset(source, f"indicnews-{language}-{task}", Source(files=files))


def _stsb(source: str) -> Preset:
    language = source.split(":", 1)[1].lower()
    folders = {"en": "stsb-english", "english": "stsb-english", "mr": "stsb-marathi", "marathi": "stsb-marathi"}
    if language not in folders:
        raise DataError(f"{source!r}: STS Benchmark presets are stsb:en and stsb:mr")
    columns = {"text": "sentence1", "text_pair": "sentence2", "label": "score"}
    if folders[language] == "stsb-english":
        return Preset(source, "stsb-english", Source(hub_id="mteb/stsbenchmark-sts", columns=columns), "stsb")
    split_files = {
        s: f"{STSB_MR_REPO}/sts-{n}-mr.tsv" for s, n in (("train", "train"), ("validation", "dev"), ("test", "test"))
    }
    return Preset(source, "stsb-marathi", Source(files=split_files, file_format="stsb", columns=columns), "stsb")


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


def _glue(source: str) -> Preset:
    task = source.split(":", 1)[1].lower()
    if task not in GLUE_COLUMNS:
        raise DataError(f"{source!r}: GLUE tasks are {', '.join(sorted(GLUE_COLUMNS))}")
    text, pair = GLUE_COLUMNS[task]
    columns = {"text": text, "label": "label"} | ({"text_pair": pair} if pair else {})
    return Preset(source, f"glue-{task}", Source(hub_id="nyu-mll/glue", hub_config=task, columns=columns))


_PRESET_KINDS: dict[str, Callable[[str], Preset]] = {"indicnews": _indicnews, "stsb": _stsb, "glue": _glue}
PRESET_NAMES = (
    *(f"indicnews:{language}:{task}" for language in INDICNEWS_LANGUAGES for task in INDICNEWS_TASKS),
    "stsb:en",
    "stsb:mr",
    *(f"glue:{task}" for task in GLUE_COLUMNS),
)


# ---------------------------------------------------------------- fetching


class DownloadError(DataError):
    """None of a file's URLs answered (no network, or moved): names each URL and why."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__(
            "could not download the data set: "
            + "; ".join(failures)
            + ". Without network access, set PRUNETUNE_DATA_DIR (or data.data_dir) to a directory that holds it."
        )


def download(urls: str) -> Path:
    """The first of the space-separated ``urls`` that answers, cached under the cache's ``data`` folder."""
    cache = cache_root() / "data"
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
    raise DownloadError(errors)


def local_path(path_or_urls: str) -> Path:
    return download(path_or_urls) if path_or_urls.startswith(("http://", "https://")) else Path(path_or_urls)


def known_preset(name: str) -> Preset:
    found = preset(name)
    if found is None:
        raise DataError(f"{name!r} is not a preset; `prunetune data list` lists them")
    return found


def fetch(name: str, root: Path, say: Callable[[str], None] = lambda line: None) -> Path:
    """Download preset ``name``'s files into its folder under data dir ``root``; the folder.

    Through :func:`download`, so a pinned file is checked against its SHA-256. Every split is downloaded
    before the folder appears: a fetch cut short never leaves a copy that looks complete."""
    found = known_preset(name)
    target = root / found.folder
    if found.remote.hub_id is not None:
        raise DataError(
            f"{name} is the hub data set {found.remote.hub_id}, which the datasets library downloads and caches "
            f"on first use; for a local copy put its train/validation/test files in {target}"
        )
    downloaded = {}
    for split, urls in found.remote.files.items():
        say(f"downloading {name} {split}")
        downloaded[split] = _download_for(urls, target)
    staging = root / f".{found.folder}.{os.getpid()}.partial"
    staging.mkdir(parents=True, exist_ok=True)
    for split, path in downloaded.items():
        shutil.copyfile(path, staging / f"{split}{path.suffix}")
    os.replace(staging, target)
    return target


def _download_for(urls: str, target: Path) -> Path:
    try:
        return download(urls)
    except DownloadError as err:  # the fix here: the folder a copy made elsewhere goes into
        raise DataError(
            f"could not download {'; '.join(err.failures)}. Without network access, copy the preset's "
            f"train/validation/test files into {target}"
        ) from None
