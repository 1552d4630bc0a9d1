"""A worker's exit asked by Ray (SIGTERM, turned into SystemExit) prints nothing when it lands in a callback
Python cannot raise from; any other exception there is still shown."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys, weakref
from prunetune.search.trainable import ignore_exit_in_callbacks
sys.unraisablehook = ignore_exit_in_callbacks
class Held: pass
def on_collect(_):
    raise {exception}
held = Held()
ref = weakref.ref(held, on_collect)
del held  # the callback runs now; its exception cannot be raised, only shown
print("still running")
"""


@pytest.mark.parametrize(("exception", "shown"), [("SystemExit(1)", False), ("ValueError('a real bug')", True)])
def test_only_the_exit_ray_asks_for_goes_unshown(exception: str, shown: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(exception=exception)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout == "still running\n", done.stderr
    assert ("Traceback" in done.stderr and "a real bug" in done.stderr) is shown, done.stderr
    assert (done.stderr == "") is not shown, done.stderr
