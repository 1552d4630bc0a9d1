"""max-drop: one search answers every tolerance; finalists are re-trained on decision seeds the search never
selected on, paired with the tuned reference on the same seeds, and each answer says how sure it is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import assert_loads_the_same, child_runs, reference_runs, tiny_spec


def test_max_drop_answers_each_tolerance_with_a_verdict_over_decision_seeds(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path
) -> None:
    import yaml

    spec = tiny_spec(tmp_path, tiny_model, mlflow_server, ray_cluster, num_trials=5, scheduler="none", save_model=True)
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.to_dict()))
    out = tmp_path / "answer.json"
    command = [sys.executable, "-m", "prunetune.cli", "max-drop", str(spec_file), "--tolerance", "0.5", "0.001"]
    done = subprocess.run(
        [*command, "--seeds", "2", "--json", "-o", str(out), "--register", "tiny-pruned"],
        capture_output=True,
        text=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    answer = json.loads(done.stdout)  # --json: stdout is the answer alone, progress went to stderr
    assert json.loads(out.read_text()) == answer
    assert "re-checking" in done.stderr

    assert answer["seeds"] == [43, 44] and answer["search_seed"] == 42
    reference = answer["reference"]
    assert reference["learning_rate"] == 1e-3 and set(reference["scores"]) == {"43", "44"}
    assert reference["score"] == pytest.approx(sum(reference["scores"].values()) / 2)
    tight, loose = answer["tolerances"]  # sorted by tolerance
    assert (tight["tolerance"], loose["tolerance"]) == (0.001, 0.5)
    found = loose["answer"]
    assert found is not None  # a 50-point budget admits any trained model
    assert found["verdict"] in ("within", "borderline") and found["seeds"] == [43, 44]
    assert 1 <= found["layers_dropped"] <= 3 and len(found["kept_layers"]) == 4 - found["layers_dropped"]
    for seed in ("43", "44"):  # paired: each seed's drop is against the reference on that seed
        assert found["drops"][seed] == pytest.approx(reference["scores"][seed] - found["scores"][seed])
    assert found["drop"] == pytest.approx(sum(found["drops"].values()) / 2)
    low, high = found["interval"]
    assert low <= found["drop"] <= high
    assert (found["verdict"] == "within") == (high <= 0.5 + 1e-9)
    confident = loose["confidently_within"]
    assert confident is None or (
        confident["verdict"] == "within" and confident["layers_dropped"] <= found["layers_dropped"]
    )
    if tight["answer"] is not None:
        assert tight["answer"]["drop"] <= 0.001 + 1e-9 and tight["answer"]["layers_dropped"] <= found["layers_dropped"]

    # Every re-check job is an MLflow run of the search, on the decision seeds only; the references they are
    # paired with are the sweep's runs on the same seeds (none trained again).
    rechecks = child_runs(spec, answer["search_run_id"], kind="recheck")
    assert rechecks and {r.data.tags["prunetune.status"] for r in rechecks} == {"complete"}
    assert sorted(r.data.params["training.seed"] for r in rechecks) == sorted(["43", "44"] * (len(rechecks) // 2))
    # Each re-check run carries its own drop, paired on its seed and recorded to 6 decimals like every metric.
    for run in rechecks:
        seed = run.data.params["training.seed"]
        own_drop = reference["scores"][seed] - run.data.metrics["val_score"]
        assert run.data.metrics["drop"] == pytest.approx(own_drop, abs=2e-6)
        assert run.data.metrics["drop"] == round(run.data.metrics["drop"], 6)
    # The sweep's runs on the decision seeds, and the best configuration once more on the search's own seed:
    # finalists are picked by their drop paired with it.
    references = {r.data.params["training.seed"]: r for r in reference_runs(spec)}
    assert sorted(references) == ["42", "43", "44"]
    assert references["42"].data.metrics["val_score"] == pytest.approx(reference["search_seed_score"])
    trials = child_runs(spec, answer["search_run_id"])
    assert {r.data.params["training.seed"] for r in trials} == {"42"}  # the search selects on its own seed
    # Each answer is marked in MLflow: on the trial that found it (tolerances, verdicts), and on the search's run.
    marked = [r for r in trials if "prunetune.answer" in r.data.tags]
    assert marked and all(r.data.tags["prunetune.answer"].startswith("max-drop answer at ") for r in marked)
    assert any(json.loads(r.data.params["kept_layers"]) == found["kept_layers"] for r in marked)
    search_tags = MlflowClient(spec.tracking_uri).get_run(answer["search_run_id"]).data.tags
    assert f"50 points: {found['layers_dropped']} layers ({found['verdict']})" in search_tags["prunetune.answer"]

    # The answer is a model: saved with its card, logged to the search's run, registered, loadable both ways.
    model = loose["model"]
    kept = "-".join(map(str, found["kept_layers"]))
    assert model is not None and f"model-kept-{kept}-lr" in model["path"]
    card = open(os.path.join(model["path"], "README.md")).read()
    assert f"| layers kept | {found['kept_layers']} |" in card
    assert re.search(r"max-drop at tolerance\(s\) (0.1, )?50 points", card)  # one model may answer both
    assert_loads_the_same(model["path"], model["mlflow_model_uri"], spec.tracking_uri)
    # The logged model carries its own facts: logged to the run that trained it, linked to the search's run, the
    # trained configuration as params, its own scores and its decision as metrics and tags.
    client = MlflowClient(spec.tracking_uri)
    logged = client.get_logged_model(model["mlflow_model_uri"].removeprefix("models:/"))
    # That run is the answer's re-check on the first decision seed: its model was kept, not trained once more.
    trained_by = client.get_run(logged.source_run_id)
    assert trained_by.data.tags["prunetune.kind"] == "recheck" and trained_by.data.params["training.seed"] == "43"
    assert model["scores"]["val_score"] == pytest.approx(found["scores"]["43"])
    assert not child_runs(spec, answer["search_run_id"], kind="model")
    assert not (spec.storage / spec.name / "recheck-models").exists()  # the other finalists' models are gone
    assert logged.model_id in {o.model_id for o in client.get_run(answer["search_run_id"]).outputs.model_outputs}
    assert logged.params["kept_layers"] == str(found["kept_layers"]) and logged.params["seed"] == "43"
    own = {m.key: m.value for m in logged.metrics}
    assert own["val_score"] == pytest.approx(model["scores"]["val_score"])
    assert own["mean_drop"] == pytest.approx(found["drop"], abs=1e-6)  # the finalist's mean, under its own name
    assert own["mean_drop"] == round(own["mean_drop"], 6)
    assert trained_by.data.metrics["drop"] == pytest.approx(found["drops"]["43"], abs=2e-6)  # and the run's own
    assert own["layers_kept"] == len(found["kept_layers"]) and logged.tags["verdict_50"] == found["verdict"]

    versions = MlflowClient(spec.tracking_uri).search_model_versions("name = 'tiny-pruned'")
    assert all("pruned by prunetune" in v.description for v in versions)  # the registry says what each version is
    configurations = {(str(t["answer"]["kept_layers"]), t["answer"]["learning_rate"], t["answer"]["epochs"])
                      for t in (tight, loose) if t["answer"]}  # fmt: skip
    assert len(versions) == len(configurations)  # one model per configuration, however many tolerances it answers

    # The report of a max-drop leads with its answer per tolerance as the terminal gives it, in points.
    page = tmp_path / "report.html"
    reported = subprocess.run(
        [sys.executable, "-m", "prunetune.cli", "report", str(spec_file), "--output", str(page)],
        capture_output=True, text=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, timeout=300,
    )  # fmt: skip
    assert reported.returncode == 0, reported.stdout[-3000:] + reported.stderr[-3000:]
    text = page.read_text()
    lead = text.index("max-drop: the answer per tolerance")
    assert lead < text.index("The search's own trials per tolerance")  # the answer first, the search's table after
    assert "re-checks such finalists on other seeds" not in text  # no banner asking for the max-drop that ran
    low, high = found["interval"]
    for shown in (f"{100 * found['drop']:+.2f}", f"[{100 * low:+.2f}, {100 * high:+.2f}]", found["verdict"]):
        assert shown in text[lead:], shown
    assert f"<b>{found['layers_dropped']} layer" in text and "seeds 43, 44" in text
    assert ">50</td>" in text[lead:] and ">0.1</td>" in text[lead:]  # tolerances in points, not 0.5 and 0.001
    assert ">0.5</td>" not in text and ">0.001</td>" not in text
    assert model["path"] in text
