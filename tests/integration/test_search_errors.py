"""A search that cannot work ends with one clear line before any Ray process or trial starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _arguments(tmp_path, sets: tuple[str, ...], spec: str | None) -> list[str]:
    args = ["search", *([spec] if spec else []), "--set", f"storage_path={tmp_path / 'runs'}"]
    for item in sets:
        args += ["--set", item]
    return args


def search(tmp_path, *sets: str, spec: str | None = None) -> subprocess.CompletedProcess:
    """``prunetune search`` in its own process, as a user runs it."""
    command = [sys.executable, "-m", "prunetune.cli", *_arguments(tmp_path, sets, spec)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ})


def search_here(capsys, tmp_path, *sets: str, spec: str | None = None) -> subprocess.CompletedProcess:
    """The same command through ``prunetune.cli.main`` in this process: the cases refused before Ray or
    MLflow start need no interpreter of their own (four seconds each of imports)."""
    from prunetune.cli import main

    capsys.readouterr()
    code = main(_arguments(tmp_path, sets, spec))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["prunetune"], code, out, err)


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


def _data(folder: Path, train: bytes, validation: bytes = b"text,label\nsome news,a\nother news,b\n") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_bytes(train)
    (folder / "validation.csv").write_bytes(validation)
    return str(folder)


GOOD_TRAIN = b"text,label\nsome news,a\nother news,b\nmore news,a\n"
NOT_UTF8 = GOOD_TRAIN + b"caf\xe9 news,a\n"  # a Latin-1 byte on line 5
NO_LABEL = b"text,topic\nsome news,a\n"
UNSEEN_LABEL = b"text,label\nnews,zzz\n"


def _source(folder: Path, train: bytes, validation: bytes | None = None) -> list[str]:
    data = _data(folder, train) if validation is None else _data(folder, train, validation)
    return [f"trial.data.source={data}"]


BAD_INPUTS = {
    "a spec that is a folder": (lambda t: ([], str(t)), "is a folder: give the spec's YAML file"),
    "a name that escapes its folder": (lambda t: (["name=../../x"], None), "name='../../x': use letters"),
    "storage_path that is a file": (
        lambda t: ([f"storage_path={_file(t / 'taken')}"], None),
        "is a file, not a folder",
    ),
    "a missing data folder": (lambda t: ([f"trial.data.source={t / 'nowhere'}"], None), "is neither a preset"),
    "an empty CSV": (lambda t: (_source(t / "d", b""), None), "train.csv is empty"),
    "a CSV with a non-UTF-8 byte": (lambda t: (_source(t / "d", NOT_UTF8), None), "train.csv:5: not UTF-8 text"),
    "no label column": (lambda t: (_source(t / "d", NO_LABEL), None), "label"),
    "a validation label not seen in train": (
        lambda t: (_source(t / "d", GOOD_TRAIN, UNSEEN_LABEL), None),
        "zzz",
    ),
    "a model path that does not exist": (lambda t: ([f"trial.model={t / 'no-such-model'}"], None), "no-such-model"),
}


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_in_one_line_before_ray_or_mlflow_start(tmp_path, capsys, case: str) -> None:
    make, message = BAD_INPUTS[case]
    sets, spec = make(tmp_path)
    done = search_here(capsys, tmp_path, *sets, spec=spec)
    assert done.returncode == 2 and message in done.stderr, (case, done.stderr[-1500:])
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr[-1500:]
    assert "Ray" not in done.stdout + done.stderr  # refused before Ray started
    assert not (tmp_path / "runs").exists()  # no MLflow store, no half-made folder


def test_gpus_asked_of_a_cluster_without_any_end_at_once_with_nothing_left_running(data_env, tmp_path) -> None:
    """A local Ray instance on this machine has no GPU: a trial asking for half of one is refused before any
    job is queued (it used to wait for ever, printing an autoscaler warning every 35 s)."""
    done = search(tmp_path, "resources.gpus_per_trial=0.5", "num_trials=1")
    assert done.returncode == 2, done.stderr[-1500:]
    assert "asks for 1 CPU, 0.5 GPU, and no node of the Ray cluster has that" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs" / "mlflow.db").exists()  # refused before any record was opened
