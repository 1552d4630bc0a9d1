"""prunetune's optional libraries, each bound once here and imported where it is first used (:mod:`.lazy`).

Modules write ``from prunetune.libs import torch`` at their top: importing them loads no library, and a
missing one names its extra on first use. mypy sees the real modules (``TYPE_CHECKING``), so calls into
them stay type-checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunetune.lazy import lazy

if TYPE_CHECKING:
    import datasets as datasets
    import huggingface_hub as huggingface_hub
    import matplotlib.pyplot as plt
    import mlflow as mlflow_fluent  # the fluent API (a module-level run), for logging models
    import numpy as np
    import optuna as optuna
    import pandas as pd
    import pyarrow.fs as pa_fs
    import ray as ray
    import sentence_transformers as sentence_transformers
    import torch as torch
    import transformers as transformers
    import yaml as yaml
    from matplotlib import ticker as plt_ticker
    from mlflow import entities as mlflow_entities
    from mlflow import exceptions as mlflow_exceptions
    from mlflow import tracking as mlflow_tracking
    from ray import tune as tune
    from scipy import stats as stats
    from sentence_transformers import losses as st_losses  # type: ignore[attr-defined]  # lazily exported
    from sklearn import metrics as sk_metrics
else:
    datasets = lazy("datasets")
    huggingface_hub = lazy("huggingface_hub")
    plt = lazy("matplotlib.pyplot")  # the analysis's plots (analysis/plots.py sets the Agg backend first)
    plt_ticker = lazy("matplotlib.ticker")
    np = lazy("numpy")
    optuna = lazy("optuna")
    pd = lazy("pandas")
    pa_fs = lazy("pyarrow.fs")  # Ray's storage filesystems
    ray = lazy("ray")
    sentence_transformers = lazy("sentence_transformers")
    torch = lazy("torch")
    transformers = lazy("transformers")
    yaml = lazy("yaml")
    mlflow_fluent = lazy("mlflow")
    mlflow_entities = lazy("mlflow.entities")
    mlflow_exceptions = lazy("mlflow.exceptions")
    mlflow_tracking = lazy("mlflow.tracking")
    tune = lazy("ray.tune")
    stats = lazy("scipy.stats")
    st_losses = lazy("sentence_transformers.losses")
    sk_metrics = lazy("sklearn.metrics")

__all__ = [
    "datasets", "huggingface_hub", "mlflow_entities", "mlflow_exceptions", "mlflow_fluent", "mlflow_tracking", "np",
    "optuna", "pa_fs", "pd", "plt", "plt_ticker", "ray", "sentence_transformers", "sk_metrics", "st_losses", "stats",
    "torch", "transformers", "tune", "yaml",
]  # fmt: skip
