"""The main job as a user first runs it: `prunetune max-drop` on the embedded default (the packaged MiniLM,
IndicNews English headlines), answered per tolerance with its verdict, each answer saved as a model. Over
25 minutes on 2 CPU cores: the reference sweep alone (3 learning rates x 2 seeds, the full model on 4,000
headlines) took 17 minutes there on 2026-11-27, and the run was stopped at 25 minutes during its re-checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_max_drop_on_the_embedded_default_answers_every_tolerance(data_env, tmp_path) -> None:
    answer = tmp_path / "answer.json"
    done = subprocess.run(
        [sys.executable, "-m", "prunetune.cli", "max-drop", "--tolerance", "0.01", "0.03", "--seeds", "2",
         "--set", "num_trials=4", "--set", f"storage_path={tmp_path / 'runs'}", "-o", str(answer)],
        capture_output=True, text=True, timeout=3600, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(answer.read_text())
    assert [t["tolerance"] for t in result["tolerances"]] == [0.01, 0.03]
    assert 0.3 < result["reference"]["score"] <= 1.0  # 10 topics: chance is 0.1
    # At 3 points the demo has always found an answer (5 layers dropped, 2026-11-27); at 1 point it may not.
    assert result["tolerances"][-1]["answer"] is not None
    for tolerance in result["tolerances"]:
        found, sure = tolerance["answer"], tolerance["confidently_within"]
        if found is None:
            assert sure is None
            continue
        assert found["verdict"] in ("within", "borderline") and len(found["seeds"]) == 2
        if sure is not None:
            assert sure["verdict"] == "within" and sure["layers_dropped"] <= found["layers_dropped"]
