"""Searches started together: the SQLite stores are created by one process at a time, and a second driver
on the same search is refused in one line (real processes, a real MLflow SQLite store)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient
from prunetune.search.store import TrackingError, search_lock

OPEN_STORE = """
import sys
from prunetune.search.runner import _open_store
from prunetune.search.spec import load_spec
spec = load_spec(None, {{"name": sys.argv[1], "storage_path": {storage!r}}})
store = _open_store(spec, False, lambda line: None)
print(store.parent)
"""


def test_searches_started_together_on_a_new_store_both_open_it_and_it_stays_usable(tmp_path) -> None:
    code = OPEN_STORE.format(storage=str(tmp_path / "runs"))
    starts = [subprocess.Popen([sys.executable, "-c", code, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for name in ("first", "second", "third")]  # fmt: skip
    outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in starts]
    assert all(rc == 0 for rc, _, _ in outcomes), [err[-1500:] for _, _, err in outcomes]
    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    names = {e.name for e in mlflow.search_experiments()}
    assert {"first", "second", "third"} <= names
    parents = {out.strip().splitlines()[-1] for _, out, _ in outcomes}
    assert all(mlflow.get_run(run_id).info.status == "RUNNING" for run_id in parents) and len(parents) == 3


def test_a_second_driver_on_the_same_search_is_refused_naming_the_first(tmp_path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from prunetune.search.store import search_lock\n"
            f"with search_lock(Path({str(tmp_path)!r}), 'busy'):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n"
        )],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TrackingError, match=f"search busy is already running in .* \\(pid {holder.pid}\\)"):
            with search_lock(tmp_path, "busy"):
                pass
        with search_lock(tmp_path, "other"):  # another name is free
            with search_lock(tmp_path, "other"):  # and re-entrant in one process (max-drop runs its search)
                pass
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with search_lock(tmp_path, "busy"):  # released when its holder died
        pass
