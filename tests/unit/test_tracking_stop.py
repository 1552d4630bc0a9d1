"""A tracking stop raised inside Tune's loop (by the recorder Tune restored on resume) still ends the search in
its one line, however Tune wrapped it."""

from __future__ import annotations

from prunetune.search.runner import tracking_stop
from prunetune.search.store import TrackingUnreachable


def test_the_stop_is_found_in_the_exception_chain() -> None:
    stop = TrackingUnreachable("the MLflow tracking server http://x did not answer for 5 s")
    try:
        try:
            raise stop
        except TrackingUnreachable as err:
            raise RuntimeError("The Ray Tune run failed.") from err
    except RuntimeError as wrapped:
        assert tracking_stop(wrapped) is stop
    assert tracking_stop(RuntimeError("another failure")) is None
