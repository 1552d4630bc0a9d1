"""An analysis-only install has no torch: the packaging says so, and the report renders in an interpreter
where importing torch, transformers or Ray fails. (The trainables' modules are part of every install and import
without torch; that the analysis modules load none of them is tests/unit/test_imports.py's check.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomllib
from mlflow.tracking import MlflowClient
from prunetune.search.store import experiment_id
from prunetune.search.tracking import log_params_and_metrics

from prunetune.config import TrialConfig
from prunetune.records import LAYER_SCORES_ARTIFACT, PARENT, TAG_KIND, TAG_STATUS, LayerScores, runs_where

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "sentence_transformers", "datasets", "ray")


def blocker(*blocked: str) -> str:
    """Code that runs first in a child interpreter: importing any of ``blocked`` (or below) fails there,
    as on a laptop without them."""
    return f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in {blocked!r}):
            raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
        return None
sys.meta_path.insert(0, Block())
"""


def test_the_core_and_the_analysis_extra_bring_no_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["analysis"]]
    assert not [d for d in wanted if d.split(">")[0].split("=")[0].split("[")[0] in ("torch", "transformers", "ray")]
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["train"])


def _search(tmp_path: Path) -> str:
    """A small finished search, written with the calls and names the search's recorder uses."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowClient(uri)
    experiment = experiment_id(mlflow, "laptop", (tmp_path / "artifacts").as_uri())
    parent = mlflow.create_run(experiment, run_name="laptop", tags={TAG_KIND: "search"}).info.run_id
    reference = mlflow.create_run(experiment, tags={TAG_KIND: "reference", TAG_STATUS: "complete"}).info.run_id
    log_params_and_metrics(mlflow, reference, TrialConfig().to_flat(), {"val_score": 0.64, "layers_kept": 6})
    mlflow.set_terminated(reference)
    mlflow.set_tag(parent, "prunetune.reference_run_ids", json.dumps([reference]))
    for kept, score in (([0, 1, 2, 3], 0.635), ([0, 5], 0.62)):
        run = mlflow.create_run(experiment, tags={PARENT: parent, TAG_KIND: "trial", TAG_STATUS: "complete"})
        config = TrialConfig().with_overrides({"drop.strategy": "top", "kept_layers": kept})
        metrics = {"layers_kept": len(kept), "layers_dropped": 6 - len(kept), "final_val_score": score}
        log_params_and_metrics(mlflow, run.info.run_id, config.to_flat(), metrics | {"drop": 0.64 - score})
        mlflow.set_tag(run.info.run_id, "prunetune.kept_layers", json.dumps(kept))
        mlflow.set_terminated(run.info.run_id)
    n = 6
    flat = tuple(tuple(0.9 if j == i + 1 else 0.5 for j in range(n + 1)) for i in range(n + 1))
    scores_file = tmp_path / LAYER_SCORES_ARTIFACT
    scores_file.write_text(LayerScores("m", n, 8, 16, flat, flat).to_json())
    mlflow.log_artifact(parent, str(scores_file))
    mlflow.set_terminated(parent)
    return uri


def test_the_report_renders_where_torch_transformers_and_ray_cannot_be_imported(tmp_path) -> None:
    uri = _search(tmp_path)
    out = tmp_path / "report.html"
    code = blocker(*HEAVY) + (
        "from prunetune.cli import main\n"
        f"rc = main(['report', 'laptop', '--tracking-uri', {uri!r}, '-o', {str(out)!r}, '--no-log'])\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'ray')]\n"
        "assert not loaded, loaded\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    html = out.read_text()
    assert "[0, 5]" in html and "<svg" in html  # the trials table and the inlined plots


def test_a_command_whose_extra_is_missing_says_which_to_install(tmp_path) -> None:
    code = blocker(*HEAVY) + (
        "from prunetune.cli import main\n"
        "sys.exit(main(['prune', 'some-model', '--strategy', 'top', '--count', '1', '-o', 'x']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "pip install 'prunetune[train]'" in done.stderr and "Traceback" not in done.stderr


def test_script_planted_in_a_tag_a_param_or_a_name_reaches_the_report_escaped(tmp_path) -> None:
    """Anyone who can reach the tracking server can write tags, params and run names: the report escapes them."""
    from prunetune.cli import main

    uri = _search(tmp_path)
    mlflow = MlflowClient(uri)
    planted = "<img src=x onerror=alert(1)>"
    experiment = mlflow.get_experiment_by_name("laptop").experiment_id
    parent = mlflow.search_runs([experiment], filter_string=runs_where(kind="search"))[0].info.run_id
    run = mlflow.create_run(
        experiment,
        run_name="<script>alert('name')</script>",
        tags={PARENT: parent, TAG_KIND: "trial", TAG_STATUS: planted},
    )
    config = TrialConfig().with_overrides({"kept_layers": [0, 1, 2]}).to_flat()
    config["drop.strategy"] = "<script>alert('param')</script>"
    log_params_and_metrics(mlflow, run.info.run_id, config, {"final_val_score": 0.6, "layers_kept": 3})
    mlflow.set_terminated(run.info.run_id)
    out = tmp_path / "report.html"
    assert main(["report", "laptop", "--tracking-uri", uri, "-o", str(out), "--no-log"]) == 0
    html = out.read_text()
    assert "<script" not in html and "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert(&#x27;param&#x27;)" in html
