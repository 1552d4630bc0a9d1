"""Filter, sort and pick columns of a trials frame, from the short expressions a person types.

``--where``: a Python boolean expression over the columns, read with :mod:`ast` (Python's own grammar,
so ``and``, ``or``, ``not``, parentheses, ``in [...]`` and ``not in`` all work), e.g.
``"drop<=0.01 and (strategy=middle or strategy in [top, window])"``. Two conveniences for a shell:
``=`` means ``==``, and a bare word that is not a column is text (``strategy=middle``). Values are numbers,
``true``/``false``, lists (``kept_layers=[0, 5]``) or quoted text. A row whose column has no value does
not match a comparison on it. ``--sort -val_score,layers_dropped``: columns, ``-`` for descending.

Not ``DataFrame.query``: it needs every text quoted and cannot compare list-valued cells (kept layers).
"""

from __future__ import annotations

import ast
import functools
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from prunetune.analysis.query import AnalysisError

from prunetune.libs import pd

__all__ = ["columns", "sort", "where"]


_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda cell, values: cell in values,
    ast.NotIn: lambda cell, values: cell not in values,
}
_EXAMPLE = 'e.g. "drop<=0.01 and (strategy=middle or strategy in [top, window])"'
# What an unreadable filter is answered with: the whole grammar fits the error's one line.
_GRAMMAR = (
    "write `column op value` clauses (op: = != < <= > >= in [...] not in [...]) joined by and, or, not "
    f"and parentheses, {_EXAMPLE}"
)
# a lone "=" outside quotes, which a person means as "=="
_SINGLE_EQUALS = re.compile(r"""('[^']*'|"[^"]*")|(?<![<>!=])=(?!=)""")


def _check_column(frame: pd.DataFrame, column: str, where: str) -> None:
    if column not in frame.columns:
        raise AnalysisError(f"{where}: no column {column!r}; columns: {', '.join(frame.columns)}")


def _column(node: ast.expr) -> str | None:
    """``drop`` or a dotted ``drop.threshold``: the column a comparison's left side names."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parent = _column(node.value)
        return None if parent is None else f"{parent}.{node.attr}"
    return None


def _value(node: ast.expr) -> Any:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(item) for item in node.elts]
    name = _column(node)
    if name is not None:  # a bare word: a value, as --where is typed in a shell (a column compared is not)
        return {"true": True, "false": False}.get(name.lower(), name)
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise AnalysisError(f"--where: {ast.unparse(node)!r} is not a value; {_EXAMPLE}") from None


def _has_value(cell: Any) -> bool:
    return isinstance(cell, list) or not pd.isna(cell)


def _compare(series: pd.Series, op: ast.cmpop, value: Any, text: str) -> pd.Series:
    compare = _COMPARISONS[type(op)]
    membership = isinstance(op, (ast.In, ast.NotIn))
    if membership and not isinstance(value, list):
        raise AnalysisError(f"--where: {text!r}: `in` takes a list, e.g. strategy in [top, window]")
    if membership or isinstance(value, list):  # cell by cell: pandas would compare a list element-wise
        return series.map(lambda cell: _has_value(cell) and bool(compare(cell, value))).astype(bool)
    try:
        matched = compare(series, value).fillna(False).astype(bool)
    except TypeError:
        raise AnalysisError(f"--where: {text!r}: the column holds {series.dtype} values, not comparable so") from None
    return series.map(_has_value).astype(bool) & matched


def _mask(frame: pd.DataFrame, node: ast.expr) -> pd.Series:
    if isinstance(node, ast.BoolOp):
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        return functools.reduce(combine, (_mask(frame, value) for value in node.values))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_mask(frame, node.operand)
    text = ast.unparse(node)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARISONS:
        column = _column(node.left)
        if column is not None:
            _check_column(frame, column, "--where")
            return _compare(frame[column], node.ops[0], _value(node.comparators[0]), text)
    raise AnalysisError(f"--where: cannot read {text!r}; {_GRAMMAR}")


def where(frame: pd.DataFrame, expression: str | None) -> pd.DataFrame:
    """The rows of ``frame`` matching ``expression`` (see the module doc)."""
    if not expression or not expression.strip():
        return frame
    python = _SINGLE_EQUALS.sub(lambda m: m.group(1) or "==", expression.strip())
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError:
        raise AnalysisError(f"--where: cannot read {expression.strip()!r}; {_GRAMMAR}") from None
    return frame[_mask(frame, tree.body).to_numpy()]


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
