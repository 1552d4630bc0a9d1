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
from prunetune.search.runner import open_search_store
from prunetune.search.spec import load_spec
spec = load_spec(None, {{"name": sys.argv[1], "storage_path": {storage!r}}})
store = open_search_store(spec, False, lambda line: None)
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


def test_a_search_running_from_another_folder_on_the_same_server_is_refused_before_ray(
    tmp_path, data_env, capsys
) -> None:
    """Two drivers of one search name with different storage_paths share a tracking store: their folder locks
    do not meet, so the second is refused by the first's running search run, in one line, before Ray starts."""
    from prunetune.search.runner import open_search_store
    from prunetune.search.spec import load_spec

    from prunetune.cli import main

    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    first = load_spec(None, {"name": "busy", "storage_path": str(tmp_path / "a"), "tracking_uri": shared})
    running = open_search_store(first, False, lambda line: None).parent  # the first driver's search run, RUNNING

    capsys.readouterr()
    code = main(["search", "--set", "name=busy", "--set", f"storage_path={tmp_path / 'b'}",
                 "--set", f"tracking_uri={shared}"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "search busy is already running on this tracking server from " in err and running in err
    assert str((tmp_path / "a").resolve()) in err and "--set name=" in err
    assert not (tmp_path / "b" / "busy").exists()  # nothing made: refused before Ray and before its run
    client = MlflowClient(shared)
    experiment = client.get_experiment_by_name("busy").experiment_id
    assert [r.info.run_id for r in client.search_runs([experiment])] == [running]

    # From the first's own folder, its running run is a dead driver's (this one holds the lock): no refusal.
    from prunetune.search.runner import refuse_another_driver

    refuse_another_driver(first, resume=False)
    client.set_terminated(running)  # once it ends, the other folder may run the name too
    second = load_spec(None, {"name": "busy", "storage_path": str(tmp_path / "b"), "tracking_uri": shared})
    refuse_another_driver(second, resume=False)


def test_a_half_created_store_without_runs_is_moved_aside_and_made_anew(tmp_path) -> None:
    """What two unlocked starts left behind (MLflow's table creation died half-way): repaired, not fatal."""
    import sqlite3

    runs = tmp_path / "runs"
    runs.mkdir()
    with sqlite3.connect(runs / "mlflow.db") as db:
        db.execute("CREATE TABLE _alembic_tmp_tags (key TEXT)")  # the table the failed creation left
    code = OPEN_STORE.format(storage=str(runs))
    done = subprocess.run([sys.executable, "-c", code, "repaired"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    assert "half-created and held no run: moved to" in done.stderr
    assert len(list(runs.glob("mlflow.db.broken-*"))) == 1
    assert MlflowClient(f"sqlite:///{runs / 'mlflow.db'}").get_run(done.stdout.strip().splitlines()[-1])


def test_a_store_that_cannot_be_opened_but_holds_runs_is_left_alone_and_the_fix_named(tmp_path) -> None:
    import sqlite3

    from prunetune.search.store import open_store

    runs = tmp_path / "runs"
    code = OPEN_STORE.format(storage=str(runs))  # a store with a search run, made in another process
    subprocess.run([sys.executable, "-c", code, "kept"], check=True, capture_output=True, timeout=300)
    with sqlite3.connect(runs / "mlflow.db") as db:
        db.execute("UPDATE alembic_version SET version_num = 'from-elsewhere'")  # a schema this MLflow cannot read
    before = (runs / "mlflow.db").read_bytes()
    with pytest.raises(TrackingError, match="cannot be opened .*left as it is.*mlflow db upgrade"):
        open_store(f"sqlite:///{runs / 'mlflow.db'}", patience_s=5)
    assert (runs / "mlflow.db").read_bytes() == before and not list(runs.glob("*.broken-*"))
