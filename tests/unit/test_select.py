"""The --where language as `prunetune trials` reads it: or, parentheses, errors that teach it, and no match."""

from __future__ import annotations

import pandas as pd
import pytest
from prunetune.analysis import select
from prunetune.analysis.query import COLUMNS, AnalysisError

from prunetune import cli


def frame() -> pd.DataFrame:
    rows = [
        {"run_id": "a", "kind": "trial", "status": "complete", "strategy": "top", "drop": 0.005, "val_score": 0.8},
        {"run_id": "b", "kind": "trial", "status": "complete", "strategy": "middle", "drop": 0.02, "val_score": 0.78},
        {"run_id": "c", "kind": "trial", "status": "complete", "strategy": "window", "drop": 0.04, "val_score": 0.76},
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMNS)


def test_or_and_parentheses_combine_clauses_as_python_does() -> None:
    picked = select.where(frame(), "drop<=0.01 or (strategy=middle and drop<0.03)")
    assert list(picked["run_id"]) == ["a", "b"]
    assert list(select.where(frame(), "not (strategy in [top, window])")["run_id"]) == ["b"]


@pytest.mark.parametrize("bad", ["drop=<0.03", "drop ~ 1", "0.03 > drop", "drop <"])
def test_an_unreadable_filter_is_named_with_the_grammar(bad: str) -> None:
    with pytest.raises(AnalysisError) as raised:
        select.where(frame(), bad)
    message = str(raised.value)
    assert "\n" not in message and "cannot read '" in message
    assert "joined by and, or, not and parentheses" in message and "strategy in [top, window]" in message


def test_trials_says_no_trial_matches_instead_of_printing_an_empty_table(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "search_and_store", lambda search, uri: (None, None))
    monkeypatch.setattr(cli, "search_runs_frame", lambda mlflow, search: frame())
    assert cli.main(["trials", "some-search", "--where", "drop<0"]) == 0
    shown = capsys.readouterr()
    assert shown.err == "no trials match: drop<0\n" and shown.out == ""
    assert cli.main(["trials", "some-search", "--where", "drop<0", "--format", "csv"]) == 0
    shown = capsys.readouterr()
    assert shown.err == "no trials match: drop<0\n" and shown.out.startswith("run_id,")  # a tool still gets a header
    assert cli.main(["trials", "some-search", "--where", "strategy=middle", "--columns", "run_id"]) == 0
    assert capsys.readouterr().out.split() == ["run_id", "b"]


def test_trials_ends_an_unreadable_filter_in_one_line_with_rc_2(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli, "search_and_store", lambda search, uri: (None, None))
    monkeypatch.setattr(cli, "search_runs_frame", lambda mlflow, search: frame())
    assert cli.main(["trials", "some-search", "--where", "drop=<0.03"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("prunetune trials: --where: cannot read 'drop=<0.03'; write `column op value`")
    assert len(error.splitlines()) == 1
