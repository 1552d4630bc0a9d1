"""A job's YAML file (``prunetune finetune``): a :class:`~prunetune.config.TrialConfig` whose drop strategy and
parameters are checked before any data is read or model loaded, and a search spec given in its place named."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prunetune.trainables.strategies import StrategyError, check_params

from prunetune.config import ConfigError, TrialConfig, load_yaml

__all__ = ["load_trial_config"]


def _search_spec_given(raw: Mapping[str, Any], path: str | None) -> str | None:
    if "trial" in raw or "space" in raw:
        return (
            "this is a search spec (it has trial: and space:); run it with `prunetune search` or `prunetune max-drop`, "
            "or give `prunetune finetune` a file holding what its trial: section holds"
        )
    return None


def load_trial_config(path: str | None, overrides: Mapping[str, Any] | None = None) -> TrialConfig:
    """A trial's config, whole: its drop strategy and parameters are checked here too, so a typo fails before
    any data is read or model loaded (which layers it keeps needs the model, so that check waits for it)."""
    config = load_yaml(TrialConfig, path, overrides, lambda raw: _search_spec_given(raw, path))
    try:
        check_params(config.drop.strategy, config.drop.params())
    except StrategyError as err:
        raise ConfigError(f"drop: {err}") from None
    return config
