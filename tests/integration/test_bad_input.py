"""Bad input, as a new user types it, ends in one line with exit 2, before any work: no training, no Ray, no
store made, nothing left in the folder. One row per case: the next case found is one line to add.

Each row: (argv, given the row's own empty folder; a fragment of the line the user must see). Rows run
through ``prunetune.cli.main`` in this process, in that folder, so "nothing left behind" is checked on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import MINILM


def _file(path: Path, text: str = "not what was asked for\n") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _broken_model(folder: Path) -> str:
    _file(folder / "config.json", "{not json")
    return str(folder)


REPO = Path(__file__).resolve().parents[2]
SEARCH = ["search", "--set", "storage_path=runs"]
FINETUNE = ["finetune", "--set", "training.epochs=1"]
CASES = {
    "--metrics into a missing folder": (
        lambda t: [*FINETUNE, "--metrics", "nodir/sub/m.json"],
        "the folder nodir/sub does not exist",
    ),
    "--output that is a file": (lambda t: [*FINETUNE, "-o", _file(t / "taken")], "is a file, not a folder"),
    "--metrics that is a folder": (lambda t: [*FINETUNE, "--metrics", str(t)], "is a folder: give a file name"),
    "training.epochs=0": (lambda t: ["finetune", "--set", "training.epochs=0"], "training.epochs=0 is not allowed"),
    "an ftp:// store for a search": (
        lambda t: [*SEARCH, "--set", "tracking_uri=ftp://127.0.0.1/mlflow"],
        "MLflow cannot keep runs at a ftp:// address",
    ),
    "a text file as the store": (
        lambda t: ["trials", "x", "--tracking-uri", f"sqlite:///{_file(t / 'a-text-file')}"],
        "is not an SQLite database",
    ),
    "an ftp:// store for trials": (
        lambda t: ["trials", "x", "--tracking-uri", "ftp://127.0.0.1/mlflow"],
        "ftp:// address",
    ),
    "a text file as the store for a search": (
        lambda t: [*SEARCH, "--set", f"tracking_uri=sqlite:///{_file(t / 'notes.txt')}"],
        "is not an SQLite database",
    ),
    "space.max_count as deep as the model": (
        lambda t: [*SEARCH, "--set", "space.max_count=6"],
        "space.max_count=6 cannot fit",
    ),
    "budget.tolerance=0": (lambda t: [*SEARCH, "--set", "budget.tolerance=0"], "budget.tolerance=0"),
    "scores --rows 0": (lambda t: ["scores", MINILM, "--data", "indicnews:english:shc", "--rows", "0"], "'0'"),
    "scores --block-sizes beyond the model": (
        lambda t: ["scores", MINILM, "--data", "indicnews:english:shc", "--rows", "8", "--block-sizes", "7"],
        "has 6 layers; blocks of 1 to 6",
    ),
    "report --tolerance -1": (lambda t: ["report", "x", "--tolerance", "-1"], "not a drop in (0, 1)"),
    "max-drop --tolerance 3 (points, not a share)": (
        lambda t: ["max-drop", "--tolerance", "3"],
        "'3' is not a drop in (0, 1): 0.01 = 1 point",
    ),
    "prune --layers 3,x": (
        lambda t: ["prune", MINILM, "--strategy", "explicit", "--layers", "3,x", "-o", "out"],
        "give layer indices separated by commas",
    ),
    "prune -o that is a file": (
        lambda t: ["prune", MINILM, "--strategy", "top", "--count", "1", "-o", _file(t / "taken")],
        "is a file, not a folder",
    ),
    "a corrupt config.json": (
        lambda t: ["prune", _broken_model(t / "model"), "--strategy", "top", "--count", "1", "-o", "out"],
        "is not a valid JSON file",
    ),
    "an IndicNews language that does not exist": (
        lambda t: ["scores", MINILM, "--data", "indicnews:klingon:shc"],
        "IndicNews has no language 'klingon'",
    ),
    "max-drop --output into a missing folder": (
        lambda t: ["max-drop", "--output", "nodir/answer.json"],
        "the folder nodir does not exist",
    ),
    "export -o that is a file": (lambda t: ["export", "abc", "-o", _file(t / "taken")], "is a file, not a folder"),
    "an unknown option": (lambda t: ["trials", "x", "--colour"], "unrecognized arguments: --colour"),
    "a model path that does not exist": (
        lambda t: ["prune", str(t / "no-such-model"), "--strategy", "top", "--count", "1", "-o", "out"],
        "no-such-model': does not exist; give the folder a saved model is in",
    ),
    "a model path that does not exist, for a search": (
        lambda t: [*SEARCH, "--set", "trial.model=./no-such-model"],
        "cannot load model './no-such-model': does not exist",
    ),
    "a trial asking for more CPUs than this machine, for a local Ray": (
        lambda t: [*SEARCH, "--set", "resources.cpus_per_trial=4096"],
        "a trial asks for 4096 CPU, and no node of the Ray cluster has that",
    ),
    "a finetune spec given to search": (
        lambda t: ["search", str(REPO / "examples" / "finetune-default.yaml")],
        "this is a finetune spec (model, task, drop … at the top); run it with `prunetune finetune`",
    ),
    "a search spec given to finetune": (
        lambda t: ["finetune", str(REPO / "examples" / "search-default.yaml")],
        "this is a search spec (it has trial: and space:); run it with `prunetune search`",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, data_env, case) -> None:
    from prunetune.cli import main

    make, message = CASES[case]
    monkeypatch.chdir(tmp_path)
    argv = make(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's refusals exit from inside the parser
        code = exit.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and message in err, (case, err[-1500:])
    assert len(lines) == 1 and "Traceback" not in err, err[-1500:]
    assert not out.strip(), out
    import ray

    assert not ray.is_initialized()
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, f"left behind: {set(after) - set(before)}"


def test_a_descending_sort_column_parses_as_the_readme_writes_it() -> None:
    from prunetune.cli import build_parser, joined_values

    args = build_parser().parse_args(joined_values(["trials", "x", "--sort", "-val_score", "--format", "csv"]))
    assert args.sort == "-val_score" and args.format == "csv"


def test_max_drop_says_once_before_any_work_what_one_seed_gives(tmp_path, capsys, monkeypatch) -> None:
    from prunetune.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["max-drop", "--seeds", "1", "--set", "storage_path=runs", "--set", "tracking_uri=ftp://x/y"])
    err = capsys.readouterr().err
    assert code == 2 and "at best borderline" in err.splitlines()[0] and "ftp://" in err.splitlines()[-1], err
    assert os.listdir(tmp_path) == []
