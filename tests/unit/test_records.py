"""The record schema's pure parts: MLflow filters built in one place, with their values quoted."""

from __future__ import annotations

import pytest

from prunetune.records import KIND_TRIAL, PARENT, TAG_KIND, runs_where


def test_filters_name_the_tags_and_quote_the_values() -> None:
    assert runs_where("RUNNING", parent="abc123", kind=KIND_TRIAL) == (
        f"tags.`{PARENT}` = 'abc123' and tags.`{TAG_KIND}` = 'trial' and attributes.status = 'RUNNING'"
    )


@pytest.mark.parametrize("value", ["x' or '1' = '1", 'a"b', "a\\b"])
def test_a_value_that_would_break_or_widen_a_filter_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="cannot be used in an MLflow filter"):
        runs_where(search=value)


def test_drops_and_tolerances_read_in_the_budgets_unit() -> None:
    from prunetune.records import budget_unit, in_budget_unit

    assert in_budget_unit(0.01, False) == "1 point" and in_budget_unit(0.03, False) == "3 points"
    assert in_budget_unit(0.01, True) == "1 % of the reference" and budget_unit(True) == "% of the reference"
    assert in_budget_unit(0.012, signed=True) == "+1.20" and in_budget_unit(0.5) == "50"
