"""Filter, sort and pick columns of a trials frame, from the short expressions a person types.

``--where "drop<=0.01 and strategy=middle"``: clauses joined by ``and``, each ``column op value`` with
``op`` one of ``= == != < <= > >=``; values are numbers, ``true``/``false``, lists (``[0,5]``) or text
(quotes optional). ``--sort -val_score,layers_dropped``: columns, ``-`` for descending.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from prunetune.analysis.query import AnalysisError

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "==": operator.eq,
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|!=|==|=|<|>)\s*(.+?)\s*$")


def _value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_column(frame: pd.DataFrame, column: str, where: str) -> None:
    if column not in frame.columns:
        raise AnalysisError(f"{where}: no column {column!r}; columns: {', '.join(frame.columns)}")


def where(frame: pd.DataFrame, expression: str | None) -> pd.DataFrame:
    """The rows of ``frame`` matching ``expression`` (see the module doc); rows lacking a value never match."""
    if not expression or not expression.strip():
        return frame
    mask = pd.Series(True, index=frame.index)
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if match is None:
            raise AnalysisError(
                f"--where: cannot read {clause!r}; write `column op value` clauses joined by `and`, "
                'e.g. "drop<=0.01 and strategy=middle"'
            )
        column, op, raw = match.groups()
        _check_column(frame, column, "--where")
        value = _value(raw)
        series = frame[column]
        if isinstance(value, list):
            matched = series.map(lambda cell, v=value, f=_OPERATORS[op]: isinstance(cell, list) and bool(f(cell, v)))
        else:
            try:
                matched = _OPERATORS[op](series, value)
            except TypeError:
                raise AnalysisError(
                    f"--where: {column} holds {series.dtype} values; {raw!r} cannot be compared with {op}"
                ) from None
        mask &= matched.fillna(False).astype(bool)
    return frame[mask]


def sort(frame: pd.DataFrame, keys: str | Sequence[str] | None) -> pd.DataFrame:
    """``frame`` sorted by ``keys`` (``-column`` descending); missing values last."""
    if not keys:
        return frame
    items = [k.strip() for k in (keys.split(",") if isinstance(keys, str) else keys) if k.strip()]
    columns = [k.lstrip("-") for k in items]
    for column in columns:
        _check_column(frame, column, "--sort")
    ascending = [not k.startswith("-") for k in items]
    return frame.sort_values(columns, ascending=ascending, na_position="last", kind="stable")


def columns(frame: pd.DataFrame, names: str | Sequence[str] | None) -> pd.DataFrame:
    if not names:
        return frame
    picked = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    for column in picked:
        _check_column(frame, column, "--columns")
    return frame[picked]
