"""Analysis on real runs: a small search on the three-node cluster, recorded in a real `mlflow server`,
then `prunetune trials` and `prunetune report` read it back from MLflow alone."""

from __future__ import annotations

import json

import pytest

from tests.helpers import tiny_spec


@pytest.fixture(scope="module")
def finished_search(ray_cluster, mlflow_server, tiny_model, shared_data, tmp_path_factory):
    import os

    import ray
    from prunetune.search.runner import run_search

    os.environ["PRUNETUNE_DATA_DIR"] = str(shared_data)
    tmp_path = tmp_path_factory.mktemp("analysis")
    spec = tiny_spec(
        tmp_path,
        tiny_model,
        mlflow_server,
        ray_cluster,
        **{
            "scratch_layers": [2],
            "space.strategies": ["top", "bottom", "window", "contribution"],
            "num_trials": 5,
            "budget.tolerance": 0.9,  # every complete trial is within: the search has an answer to mark and table
            # Every trial distils from the search's teacher (the space's sampling of it: tests/unit/test_distill)
            "trial.distill.alpha": 0.5,
            "trial.distill.temperature": 2.0,
        },
    )
    try:
        result = run_search(spec, say=lambda line: None)
    finally:
        ray.shutdown()
    return spec, result


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from prunetune.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_trials_lists_every_run_typed_and_filters(finished_search, capsys) -> None:
    from prunetune.analysis.query import find_search, open_store, search_runs_frame

    spec, result = finished_search
    mlflow = open_store(spec.tracking_uri)
    search = find_search(mlflow, spec.name)
    assert search.run_id == result.parent_run_id
    frame = search_runs_frame(mlflow, search)
    model = ["model"] if result.model is not None else []  # the answer's model, trained once more
    assert sorted(frame["kind"]) == sorted(["reference", "scratch", *model] + ["trial"] * spec.num_trials)
    assert str(frame["layers_dropped"].dtype) == "Int64" and str(frame["learning_rate"].dtype) == "float64"
    trials = frame[frame["kind"] == "trial"]
    for _, row in trials.iterrows():  # params restored to their types, kept layers as lists
        assert isinstance(row["kept_layers"], list) and len(row["kept_layers"]) == row["layers_kept"]
        assert row["layers_kept"] + row["layers_dropped"] == 4
        assert row["strategy"] in spec.space.strategies
    scratch = frame[frame["kind"] == "scratch"].iloc[0]
    assert scratch["layers_kept"] == 2 and scratch["variant"] == "scratch"
    # The scratch baseline gets the tuning the reference got: its learning rate and epochs.
    assert scratch["learning_rate"] == result.reference.learning_rate
    assert scratch["epochs"] == result.reference.epochs
    assert frame[frame["kind"] == "reference"].iloc[0]["val_score"] == pytest.approx(result.reference_score)
    # Distilled: every trial records alpha and T as typed params, and learnt from the logits of one teacher
    # job (a trial never loads a teacher: its config names none, so it would have failed had it had to).
    assert set(trials["distill_alpha"]) == {0.5} and set(trials["distill_temperature"]) == {2.0}
    assert set(trials["status"]) <= {"complete", "early-stopped"} and trials["val_score"].notna().all()
    teachers = mlflow.search_runs([search.experiment_id], filter_string="tags.`prunetune.teacher` = 'true'")
    assert len(teachers) == 1 and teachers[0].data.params["training.seed"] == str(spec.trial.training.seed)
    assert teachers[0].data.params["distill.alpha"] == "0.0"  # the teacher itself learnt from labels alone

    code, out, _ = _cli(
        capsys, "trials", spec.name, "--tracking-uri", spec.tracking_uri,
        "--where", "kind=trial and layers_dropped>=2", "--format", "json",
    )  # fmt: skip
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == int((trials["layers_dropped"] >= 2).sum())
    assert all(r["layers_dropped"] >= 2 and r["kind"] == "trial" for r in rows)
    scores = [r["val_score"] for r in rows]
    code, out, _ = _cli(
        capsys, "trials", result.parent_run_id, "--tracking-uri", spec.tracking_uri, "--sort", "val_score",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0 and out.splitlines()[0].startswith("run_id,kind,status")
    assert len(out.splitlines()) == len(frame) + 1
    code, out, _ = _cli(capsys, "trials", spec.name, "--tracking-uri", spec.tracking_uri)
    assert code == 0 and "distill_alpha" in out.splitlines()[0]  # shown in the terminal once a run distils
    assert scores == sorted(scores, reverse=True) or len({r["layers_dropped"] for r in rows}) > 1


def test_queries_are_paginated(finished_search, monkeypatch) -> None:
    from prunetune.analysis import query

    spec, _ = finished_search
    mlflow = query.open_store(spec.tracking_uri)
    search = query.find_search(mlflow, spec.name)
    whole = query.search_runs_frame(mlflow, search)
    from prunetune.search import store

    monkeypatch.setattr(store, "PAGE_SIZE", 2)  # several pages of two runs each
    paged = query.search_runs_frame(mlflow, search)
    assert sorted(paged["run_id"]) == sorted(whole["run_id"])


def test_tables_agree_with_the_search(finished_search) -> None:
    from prunetune.analysis import tables
    from prunetune.analysis.query import find_search, open_store, search_runs_frame

    spec, result = finished_search
    mlflow = open_store(spec.tracking_uri)
    frame = search_runs_frame(mlflow, find_search(mlflow, spec.name))
    answer = tables.max_droppable(frame, [spec.budget.tolerance]).iloc[0]
    assert result.best is not None  # the spec's 0.9 tolerance guarantees an answer
    assert answer["max_layers_dropped"] == result.best.layers_dropped
    assert answer["val_score"] == pytest.approx(result.best.val_score)
    versus = tables.pruned_vs_scratch(frame)
    assert list(versus["layers_kept"]) == [2]
    table = tables.strategy_table(frame)
    assert "none" in set(table["strategy"])  # the reference row
    assert "4 kept" in table.columns


def test_report_is_one_html_file_logged_to_the_search(finished_search, tmp_path, capsys) -> None:
    from prunetune.analysis.query import open_store

    spec, result = finished_search
    output = tmp_path / "report.html"
    code, out, _ = _cli(capsys, "report", spec.name, "--tracking-uri", spec.tracking_uri, "--output", str(output))
    assert code == 0, out
    page = output.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4  # four plots, inlined
    for heading in ("Maximum droppable layers", "Best score per strategy", "Pruned vs trained from scratch", "Spec"):
        assert heading in page
    assert "<img" not in page and "<link" not in page and "src=" not in page  # self-contained
    # Every table scrolls inside the page, never past it; a trial shows the epoch it stopped at (early-stopped).
    assert page.count("<table>") == page.count("<div class='wide'><table>") >= 4 and "<th>epochs_run</th>" in page
    mlflow = open_store(spec.tracking_uri)
    logged = [a.path for a in mlflow.list_artifacts(result.parent_run_id, "report")]
    assert logged == ["report/report.html"]


def test_a_search_that_does_not_exist_is_named_clearly(finished_search, capsys) -> None:
    spec, _ = finished_search
    code, _, err = _cli(capsys, "trials", "no-such-search", "--tracking-uri", spec.tracking_uri)
    assert code == 2
    assert "no search 'no-such-search'" in err and spec.name in err


def test_the_mlflow_ui_serves_the_search(finished_search) -> None:
    """The page and the API the MLflow UI reads, from the same `mlflow server` the search logged to."""
    import urllib.request

    spec, result = finished_search
    with urllib.request.urlopen(spec.tracking_uri, timeout=10) as page:
        assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    from prunetune.analysis.query import find_search, open_store

    search = find_search(open_store(spec.tracking_uri), spec.name)
    request = urllib.request.Request(
        f"{spec.tracking_uri}/ajax-api/2.0/mlflow/runs/search",
        data=json.dumps(
            {
                "experiment_ids": [search.experiment_id],
                "filter": f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'",
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        runs = json.load(answer)["runs"]
    # The trials, the scratch baseline and the answer's model (when one was saved), as the UI lists them.
    assert len(runs) == spec.num_trials + 1 + (result.model is not None)
    # The view the printed link opens: every run flat, deepest drops first, with the columns a user decides on.
    from prunetune.search.store import SHARED_VIEW_PREFIX
    from prunetune.search.view import VIEW_METRICS, VIEW_ORDER, VIEW_PARAMS, VIEW_TAGS

    mlflow = open_store(spec.tracking_uri)
    views = [json.loads(v) for k, v in mlflow.get_experiment(search.experiment_id).tags.items()
             if k.startswith(SHARED_VIEW_PREFIX)]  # fmt: skip
    assert len(views) == 1 and (views[0]["orderByKey"], views[0]["orderByAsc"]) == VIEW_ORDER
    columns = views[0]["selectedColumns"]
    assert columns[: len(VIEW_PARAMS)] == [f"params.`{name}`" for name in VIEW_PARAMS]
    assert {f"metrics.`{m}`" for m in VIEW_METRICS} | {f"tags.`{t}`" for t in VIEW_TAGS} <= set(columns)
    trials = [r for r in runs if {"key": "prunetune.kind", "value": "trial"} in r["data"]["tags"]]
    assert len(trials) == spec.num_trials
    for run in trials:  # every column has its value on every trial, recorded to its measured precision
        assert set(VIEW_METRICS) <= {metric["key"] for metric in run["data"]["metrics"]}
        assert set(VIEW_PARAMS) <= {param["key"] for param in run["data"]["params"]}
        assert all(m["value"] == round(m["value"], 6) for m in run["data"]["metrics"])
    # The answer is marked: on the trial that found it, and on the search's run, in one line.
    marked = [r for r in trials if any(t["key"] == "prunetune.answer" for t in r["data"]["tags"])]
    assert result.best is not None and len(marked) == 1
    final = {m["key"]: m["value"] for m in marked[0]["data"]["metrics"]}
    assert final["val_score"] == pytest.approx(result.best.val_score)
    search_run = mlflow.get_run(result.parent_run_id)
    assert search_run.data.tags["prunetune.answer"].startswith(f"{result.best.layers_dropped} layers dropped")
    # The spec's base trial values are no params of the search's run (they read as results); the spec is its artifact.
    assert "spec.trial.drop.strategy" not in search_run.data.params and "spec.num_trials" in search_run.data.params


def test_a_distilled_trial_is_exported_with_its_teacher_re_created(finished_search, tmp_path, capsys) -> None:
    """Trials keep no weights: `prunetune export` trains a distilled trial again, its search's teacher first."""
    from prunetune.analysis.query import find_search, open_store, search_runs_frame

    spec, result = finished_search
    mlflow = open_store(spec.tracking_uri)
    frame = search_runs_frame(mlflow, find_search(mlflow, spec.name))
    trial = frame[(frame["kind"] == "trial") & (frame["status"] == "complete")].iloc[0]
    folder = tmp_path / "exported"
    code, out, err = _cli(capsys, "export", trial["run_id"], "-o", str(folder), "--tracking-uri", spec.tracking_uri)
    assert code == 0, err
    assert (folder / "teacher" / "config.json").exists() and (folder / "config.json").exists()
    assert "re-creating that first" in err
    saved = json.loads((folder / "prunetune-result.json").read_text())
    assert saved["config"]["distill"]["alpha"] == 0.5 and saved["config"]["distill"]["teacher"] == str(
        folder / "teacher"
    )
