"""The `prunetune` command as a user runs it: a real process, real models, real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import MINILM


def prunetune(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prunetune.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def test_prune_saves_a_model_that_reloads_with_the_kept_layers(tmp_path) -> None:
    from sentence_transformers import SentenceTransformer

    done = prunetune("prune", MINILM, "--strategy", "window", "--count", "3", "--start", "1", "-o", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "kept layers [0, 4, 5] of 6 (3 dropped)" in done.stdout
    model = SentenceTransformer(str(tmp_path), device="cpu")
    assert model[0].auto_model.config.prunetune_kept_layers == [0, 4, 5]


def test_scores_prints_a_table_of_every_layer(data_env) -> None:
    done = prunetune(
        "scores",
        MINILM,
        "--data",
        "indicnews:english:shc",
        "--rows",
        "32",
        "--block-sizes",
        "2",
        env={"PRUNETUNE_DATA_DIR": str(data_env)},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("layer"))) + 1 :][:6]
    assert [int(row.split()[0]) for row in table] == list(range(6))
    assert "blocks of 2" in done.stdout


def test_finetune_prints_and_saves_metrics(data_env, tmp_path) -> None:
    metrics = tmp_path / "metrics.json"
    done = prunetune(
        "finetune",
        "examples/finetune-default.yaml",
        "--metrics",
        str(metrics),
        "--set",
        "data.max_train_rows=64",
        "--set",
        "data.max_eval_rows=32",
        "--set",
        "training.epochs=1",
        "--set",
        "drop.strategy=contribution",
        "--set",
        "drop.count=2",
        "--set",
        "scores_sample_rows=32",
        env={"PRUNETUNE_DATA_DIR": str(data_env)},
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads(metrics.read_text())
    assert saved["layers_kept"] == 4 and saved["strategy"] == "contribution"
    assert 0.0 <= saved["val_accuracy"] <= 1.0 and "epoch=1" in done.stdout


def test_user_errors_exit_2_with_one_clear_line(tmp_path) -> None:
    cases = [
        (("prune", MINILM, "--strategy", "top", "--count", "6", "-o", str(tmp_path)), "count=6 is out of range"),
        (
            ("prune", MINILM, "--strategy", "sideways", "--count", "1", "-o", str(tmp_path)),
            "unknown strategy 'sideways'",
        ),
        (("finetune", "--set", "training.epoch=2"), "unknown key 'training.epoch'"),
        (("finetune", "--set", "data.source=./no/such/dir"), "neither a preset"),
        # A model that is neither a folder nor a reachable hub id (the tests run offline).
        (
            ("prune", str(tmp_path / "no-such-model"), "--strategy", "top", "--count", "1", "-o", str(tmp_path)),
            "cannot load model",
        ),
        (("search", "--set", f"trial.model={tmp_path / 'no-such-model'}"), "cannot load model"),
    ]
    for args, message in cases:
        done = prunetune(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr[-500:])
        assert "Traceback" not in done.stderr


def test_finetune_checks_the_drop_strategy_before_it_reads_any_data(tmp_path) -> None:
    # The data source does not exist: an error about the strategy proves it was checked first.
    done = prunetune("finetune", "--set", "drop.strategy=topp", "--set", f"data.source={tmp_path / 'no-such-data'}")
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "unknown strategy 'topp'" in done.stderr and "neither a preset" not in done.stderr
    assert "Traceback" not in done.stderr
