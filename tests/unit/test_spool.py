"""The durable spool of undelivered MLflow records: order, delivery marks, and a torn last line."""

from __future__ import annotations

from prunetune.search.spool import Spool


def test_records_come_back_in_order_until_delivered(tmp_path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    assert [spool.append({"n": n}) for n in range(3)] == [0, 1, 2]
    spool.delivered(0)
    reopened = Spool(tmp_path / "s.jsonl")  # another driver, after this one died
    assert reopened.pending() == [(1, {"n": 1}), (2, {"n": 2})]
    assert reopened.append({"n": 3}) == 3
    reopened.delivered(3)
    assert reopened.pending() == [] and not (tmp_path / "s.jsonl").exists()  # all delivered: emptied
    assert reopened.append({"n": 4}) == 0


def test_a_line_torn_by_a_crash_is_cut_off_not_glued_to_the_next(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"n":0}\n{"n":1}\n{"n"')
    spool = Spool(path)
    assert spool.pending() == [(0, {"n": 0}), (1, {"n": 1})]
    assert spool.append({"n": 2}) == 2
    assert Spool(path).pending() == [(0, {"n": 0}), (1, {"n": 1}), (2, {"n": 2})]
