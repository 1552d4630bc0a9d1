"""What a user sees: a small search through the CLI, as a subprocess with its output captured (not a
terminal). stdout holds the answer alone; stderr the search's progress, and nothing of Ray's, MLflow's or
Optuna's own banners; the data warning once per search; no ANSI codes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

BANNERS = (
    "Creating initial MLflow database tables",  # MLflow, opening a new local store
    "Token authentication",  # Ray, starting a local cluster
    "Configuration for experiment",  # Tune's experiment box
    "View detailed results here",
    "tensorboard",
    "ExperimentalWarning",  # Optuna
    "Traceback",
)


def test_a_search_prints_its_progress_on_stderr_its_answer_on_stdout_and_no_banner(
    tiny_model, data_env, tmp_path
) -> None:
    overrides = {
        "name": "terminal",
        "storage_path": str(tmp_path / "runs"),
        "trial.model": tiny_model,
        "trial.data.max_train_rows": 120,
        "trial.data.max_eval_rows": 60,
        "trial.training.epochs": 1,
        "trial.training.max_length": 24,
        "space.epochs": "[1, 1]",
        "space.strategies": "[top, window]",
        "reference.learning_rates": "[1e-3]",
        "budget.tolerance": 0.5,
        "seeds": 1,
        "space.max_count": 1,  # num_trials unset: 2 per depth the space may drop, so 2
        "max_concurrent": 2,
    }
    sets = [arg for key, value in overrides.items() for arg in ("--set", f"{key}={value}")]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    done = subprocess.run(
        [sys.executable, "-m", "prunetune.cli", "search", *sets],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    out, err = done.stdout, done.stderr
    assert out.startswith("reference: ") and "| layers dropped | strategy |" in out and "model: " in out
    assert "trials 2/2–5 done" not in out and "trials 2/2–5 done" in err  # progress on stderr only
    assert [banner for banner in BANNERS if banner.lower() in (out + err).lower()] == [], err[-3000:]
    assert len(re.findall(r"skipped \d+ empty text", err)) == 1  # the data warning, once per search
    assert "\x1b[" not in out + err
    assert (
        "num_trials unset: at least 2 trials (2 per depth the search may drop, 1 of 4 layers), then on while an "
        "answer is still open, at most 5; --set num_trials=N for a fixed count" in err
    ), err[-3000:]
    # Why the search stopped, in one line: a 50-point budget leaves no answer open past the one depth it may drop.
    stopped = "stopped after 2 trials: no answer is still open (dropped so far on the search seed: within 50: 1 layer)"
    assert stopped in err, err[-3000:]
    # The warm start is named before the trials: 2 trials leave it one, the 1-layer block.
    assert "the first trial (space.warm_start): the angular block of 1 layer, at lr 2.0e-03" in err, err[-3000:]
    # Each finished job says what it kept, in words: the tiny model's reference keeps all its layers.
    assert re.search(
        r"^  \[\d\d:\d\d\] reference 1/1: kept \d+ layers, lr 1\.0e-03, 1 epoch, seed \d+: val_score ", err, re.M
    )
    for line in err.splitlines():  # every line is prunetune's: a progress line or a warning of its own
        assert line.startswith(
            (
                "search ",
                "reference",
                "num_trials unset: ",
                "stopped after ",
                "the first ",
                "  [",
                "[",
                "model: ",
                "WARNING ",
            )  # fmt: skip
        ), line
