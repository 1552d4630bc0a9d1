"""The durable spool of undelivered MLflow records: order, delivery marks, a torn last line, and the records'
own JSON form (an earlier driver's spool is read by the next one)."""

from __future__ import annotations

import json

from prunetune.search.spool import LogToRun, OpenRun, Spool, from_json, to_json


def _log(n: int) -> LogToRun:
    return LogToRun(trial=f"t{n}", metrics={"val_score": n / 10}, step=n)


def test_records_come_back_in_order_until_delivered(tmp_path) -> None:
    spool = Spool(tmp_path / "s.jsonl")
    assert [spool.append(_log(n)) for n in range(3)] == [0, 1, 2]
    spool.delivered(0)
    reopened = Spool(tmp_path / "s.jsonl")  # another driver, after this one died
    assert reopened.pending() == [(1, _log(1)), (2, _log(2))]
    assert reopened.append(_log(3)) == 3
    reopened.delivered(3)
    assert reopened.pending() == [] and not (tmp_path / "s.jsonl").exists()  # all delivered: emptied
    assert reopened.append(_log(4)) == 0


def test_a_line_torn_by_a_crash_is_cut_off_not_glued_to_the_next(tmp_path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(json.dumps(to_json(_log(n))) for n in range(2)) + '\n{"op"')
    spool = Spool(path)
    assert spool.pending() == [(0, _log(0)), (1, _log(1))]
    assert spool.append(_log(2)) == 2
    assert Spool(path).pending() == [(0, _log(0)), (1, _log(1)), (2, _log(2))]


def test_each_kind_of_record_keeps_its_json_form() -> None:
    opened = OpenRun("t0", "top-drop2-t0", {"prunetune.kind": "trial"}, {"drop.count": "2"}, [{"name": "train"}])
    assert to_json(opened)["op"] == "open" and from_json(to_json(opened)) == opened
    closing = LogToRun(run="abc", tags={"prunetune.status": "interrupted"}, end="KILLED")
    assert to_json(closing)["op"] == "log" and from_json(to_json(closing)) == closing
    # A line written before the records were typed (no "epoch" key, no "run") reads with the defaults.
    older = {"op": "log", "trial": "t1", "metrics": {"drop": 0.01}, "step": 2, "tags": {}, "end": None}
    assert from_json(older) == LogToRun(trial="t1", metrics={"drop": 0.01}, step=2)
