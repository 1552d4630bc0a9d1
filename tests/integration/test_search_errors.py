"""A search that cannot work ends with one clear line before any Ray process or trial starts."""

from __future__ import annotations

import os
import subprocess
import sys


def search(tmp_path, *sets: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "prunetune.cli", "search", "--set", f"storage_path={tmp_path / 'runs'}"]
    for item in sets:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ})


def test_bad_key_impossible_strategy_and_unreachable_server_fail_before_any_trial(tmp_path) -> None:
    cases = [
        (("num_trails=3",), "unknown key 'num_trails'"),
        (("space.min_count=6",), "cannot fit sentence-transformers/all-MiniLM-L6-v2 (6 layers)"),
        (("space.strategies=[top, explicit]",), "'explicit' cannot be searched"),
        (("tracking_uri=http://127.0.0.1:9",), "MLflow tracking server http://127.0.0.1:9 does not answer"),
    ]
    for sets, message in cases:
        done = search(tmp_path, *sets)
        assert done.returncode == 2 and message in done.stderr, (sets, done.stderr[-800:])
        assert "Traceback" not in done.stderr
    # Nothing was started or recorded: no Ray results, no MLflow store.
    assert not (tmp_path / "runs" / "prunetune-default").exists()
