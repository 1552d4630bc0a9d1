"""Layer surgery: one adapter that finds, keeps and renumbers the transformer layers of any supported encoder.

Works on a bare encoder (``AutoModel``), a task model (``AutoModelForSequenceClassification``)
or a ``SentenceTransformer``: all three hold the same encoder, found by :func:`encoder_of`.
The kept layers are the same modules with the same weights; the config and everything that
indexes layers are fixed so that the model saves and reloads with ``from_pretrained`` /
``SentenceTransformer(path)`` and gives identical outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prunetune.trainables.strategies import check_kept

from prunetune.errors import PrunetuneError
from prunetune.libs import torch

__all__ = [
    "FAMILIES", "SurgeryError", "encoder_of", "keep_layers", "layers_of", "num_layers", "parameter_count", "supported"
]  # fmt: skip


@dataclass(frozen=True)
class Family:
    """Where a model family keeps its layer list, relative to the bare encoder."""

    layers_path: tuple[str, ...]


FAMILIES: dict[str, Family] = {
    "bert": Family(("encoder", "layer")),
    "roberta": Family(("encoder", "layer")),
    "xlm-roberta": Family(("encoder", "layer")),
    "electra": Family(("encoder", "layer")),
    "mpnet": Family(("encoder", "layer")),
    "deberta-v2": Family(("encoder", "layer")),
    "distilbert": Family(("transformer", "layer")),
}

# Families whose layers share one set of weights: dropping a layer removes no parameter and
# changes what the shared weights compute everywhere, so "pruning" them means something else.
SHARED_WEIGHTS = {"albert": "ALBERT shares one set of weights across all its layers"}

# Recorded in the pruned model's config.json: which layers of the original model it holds.
KEPT_LAYERS_KEY = "prunetune_kept_layers"


class SurgeryError(PrunetuneError, ValueError):
    """A model that cannot be pruned, or a set of layers that cannot be kept."""


def encoder_of(model: Any) -> Any:
    """The bare transformer encoder inside a task model or a SentenceTransformer."""
    if any(cls.__name__ == "SentenceTransformer" for cls in type(model).__mro__):
        for module in model.children():
            inner = getattr(module, "auto_model", None)
            if inner is not None:
                return getattr(inner, "base_model", inner)
        raise SurgeryError("this SentenceTransformer has no transformer module (no 'auto_model') to prune")
    base = getattr(model, "base_model", None)
    if base is None or not hasattr(model, "config"):
        raise SurgeryError(f"{type(model).__name__} is not a Hugging Face model or a SentenceTransformer")
    return base


def family_of(encoder: Any) -> Family:
    model_type = getattr(encoder.config, "model_type", "?")
    if model_type in SHARED_WEIGHTS:
        raise SurgeryError(f"cannot prune {model_type}: {SHARED_WEIGHTS[model_type]}; supported: {supported()}")
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise SurgeryError(f"unsupported architecture {model_type!r}; supported: {supported()}") from None


def supported() -> str:
    return ", ".join(sorted(FAMILIES))


def _layer_list_owner(encoder: Any, family: Family) -> Any:
    owner = encoder
    for name in family.layers_path[:-1]:
        owner = getattr(owner, name)
    return owner


def layers_of(model: Any) -> Sequence[Any]:
    """The ``nn.ModuleList`` of transformer layers of ``model``."""
    encoder = encoder_of(model)
    family = family_of(encoder)
    return getattr(_layer_list_owner(encoder, family), family.layers_path[-1])


def num_layers(model: Any) -> int:
    """The model's encoder layers (any supported family: BERT, RoBERTa/XLM-R, ELECTRA, MPNet, DistilBERT,
    DeBERTa-v2, a sentence-transformer).

    Args:
        model: a transformers model or a SentenceTransformer.

    Returns:
        How many layers its encoder has now (after :func:`keep_layers`, the kept ones).

    Example:
        >>> from prunetune.trainables.models import load_any          # doctest: +SKIP
        >>> num_layers(load_any("sentence-transformers/all-MiniLM-L6-v2"))  # doctest: +SKIP
        6
    """
    return len(layers_of(model))


def _check_no_shared_weights(layers: Sequence[Any]) -> None:
    seen: dict[int, int] = {}
    for index, layer in enumerate(layers):
        for param in layer.parameters():
            if id(param) in seen and seen[id(param)] != index:
                raise SurgeryError(
                    f"layers {seen[id(param)]} and {index} share weights: dropping one would not remove them"
                )
            seen[id(param)] = index


def keep_layers(model: Any, kept: Iterable[int]) -> Any:
    """Keep only the layers ``kept`` of ``model``, in place: their modules and weights, nothing else retrained.

    The config's layer count and the ``layer_idx`` of every attention module are renumbered;
    ``config.prunetune_kept_layers`` records which layers of the *original* model remain, composing when a model is
    pruned twice, so the saved model reloads with ``from_pretrained`` and gives identical outputs.

    Args:
        model: a transformers model or a SentenceTransformer of a supported family (BERT, RoBERTa/XLM-R, ELECTRA,
            MPNet, DistilBERT, DeBERTa-v2).
        kept: indices into the model's current layer list, e.g. from
            :func:`~prunetune.trainables.strategies.kept_layers`.

    Returns:
        ``model`` itself, so calls can chain.

    Raises:
        SurgeryError: an unsupported architecture, shared layer weights (ALBERT), or indices out of range.

    Example:
        >>> from transformers import AutoModel                                      # doctest: +SKIP
        >>> model = AutoModel.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> kept = kept_layers("window", 6, {"count": 3, "start": 1})                     # doctest: +SKIP
        >>> keep_layers(model, kept).config.num_hidden_layers                             # doctest: +SKIP
        3
    """
    encoder = encoder_of(model)
    family = family_of(encoder)
    owner = _layer_list_owner(encoder, family)
    layers = getattr(owner, family.layers_path[-1])
    kept = check_kept(len(layers), list(kept))
    _check_no_shared_weights(layers)

    new_layers = torch.nn.ModuleList(layers[i] for i in kept)
    for position, layer in enumerate(new_layers):
        # transformers indexes caches and per-layer settings by `layer_idx`.
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                setattr(module, "layer_idx", position)  # noqa: B010  (an attribute torch does not type)
    setattr(owner, family.layers_path[-1], new_layers)

    config = encoder.config
    original = getattr(config, KEPT_LAYERS_KEY, None) or list(range(len(layers)))
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == len(layers):
        config.layer_types = [layer_types[i] for i in kept]
    # num_hidden_layers is an alias of the family's own name (DistilBERT: n_layers) via attribute_map.
    config.num_hidden_layers = len(kept)
    setattr(config, KEPT_LAYERS_KEY, [original[i] for i in kept])
    # A task model or SentenceTransformer may hold its own reference to the config object.
    outer_config = getattr(model, "config", None)
    if outer_config is not None and outer_config is not config and hasattr(outer_config, "num_hidden_layers"):
        outer_config.num_hidden_layers = len(kept)
        setattr(outer_config, KEPT_LAYERS_KEY, [original[i] for i in kept])
    return model


def parameter_count(model: Any) -> int:
    """The model's parameters, all of them (embeddings and head included), as ``prunetune prune`` reports them.

    Args:
        model: a transformers model or a SentenceTransformer.

    Returns:
        The number of parameters.
    """
    return sum(p.numel() for p in model.parameters())
