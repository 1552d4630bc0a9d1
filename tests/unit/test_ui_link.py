"""The link to a search in MLflow's UI and the view it opens (MLflow 3's shared view state)."""

from __future__ import annotations

import json

import pytest
from prunetune.search.store import shared_view_state, ui_link

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


def test_the_shared_view_names_each_column_as_the_ui_does_and_its_key_follows_its_columns() -> None:
    key, value = shared_view_state(["val_score", "drop"], ["prunetune.status"])
    # MLflow's UI names a column `<group>.` + backquoted name, and reads the view from this experiment tag.
    assert json.loads(value) == {
        "selectedColumns": ["metrics.`val_score`", "metrics.`drop`", "tags.`prunetune.status`"]
    }
    assert key.startswith("mlflow.sharedViewState.prunetune-")
    assert shared_view_state(["val_score", "drop"], ["prunetune.status"]) == (key, value)  # set again: the same
    assert shared_view_state(["val_score"], [])[0] != key
    dataset = json.loads(shared_view_state(["val_score"], [], ("Dataset",))[1])["selectedColumns"]
    assert dataset == ["attributes.`Dataset`", "metrics.`val_score`"]  # MLflow's own columns, when asked for


def test_the_shared_view_shows_params_first_and_sorts_the_runs_flat() -> None:
    _, value = shared_view_state(["drop"], [], params=("drop.strategy",), order_by=("metrics.`drop`", False))
    assert json.loads(value) == {
        "selectedColumns": ["params.`drop.strategy`", "metrics.`drop`"],
        "orderByKey": "metrics.`drop`",  # MLflow's search facets: a sort that is not by date lists runs flat
        "orderByAsc": False,
    }
    assert shared_view_state(["drop"], [], order_by=("metrics.`drop`", True))[0] != shared_view_state(["drop"], [])[0]


def test_the_link_opens_the_model_training_view_and_the_shared_view() -> None:
    key, _ = shared_view_state(["val_score"], [])
    plain = ui_link("http://127.0.0.1:5000", "3")
    assert plain == "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    shared = ui_link("http://127.0.0.1:5000", "3", key)
    # Only the part after the tag prefix travels; the UI ignores a share key beside search facets (searchFilter…).
    assert shared == plain + "&viewStateShareKey=" + key.removeprefix("mlflow.sharedViewState.")
    assert "searchFilter" not in shared and "orderByKey" not in shared
