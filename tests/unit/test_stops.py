"""The one stop path (prunetune/stops.py) with real signals sent to a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from prunetune import stops


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_raises_interrupted_with_the_shells_exit_status(signum, status) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(stops.Interrupted) as caught, stops.handled():
        os.kill(os.getpid(), signum)
    assert caught.value.signum == signum and caught.value.exit_status == status
    assert isinstance(caught.value, KeyboardInterrupt)  # no `except Exception` swallows it
    assert signal.getsignal(signum) is before and stops.requested() is None  # handlers given back


def test_inside_tunes_loop_a_signal_asks_tune_to_stop_and_the_driver_raises_after(monkeypatch) -> None:
    asked = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: asked.append(signum))  # Tune's, in fit
    try:
        with stops.handled():
            with stops.tune_loop():
                os.kill(os.getpid(), signal.SIGTERM)  # no exception here: Tune stops its trials itself
            assert asked == [signal.SIGUSR1] and stops.requested() == signal.SIGTERM
            with pytest.raises(stops.Interrupted, match="SIGTERM"):
                stops.raise_if_requested()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_tune_not_listening_yet_the_signal_raises_at_once() -> None:
    previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # fit has not installed its handler
    try:
        with pytest.raises(stops.Interrupted), stops.handled(), stops.tune_loop():
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_second_signal_during_the_clean_up_ends_the_process_at_once() -> None:
    script = (
        "import os, signal, time\n"
        "from prunetune import stops\n"
        "with stops.handled():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        os.kill(os.getpid(), signal.SIGINT)  # the clean-up is slow; the user presses again\n"
        "        time.sleep(30)\n"
        "        print('clean-up finished')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 130 and "clean-up finished" not in done.stdout
    assert done.stderr.strip() == "SIGINT again: stopped at once; --resume closes what is left"


def test_a_closed_terminal_stops_like_sigterm_and_the_clean_up_runs_without_it(tmp_path) -> None:
    """SIGHUP (an SSH connection that drops): exit 129, and the clean-up, which prints as it goes, runs to its end
    although nothing can be written to the terminal any more (its output goes to /dev/null)."""
    done = tmp_path / "closed"
    script = f"""
import os, signal, sys, time
from prunetune import stops
try:
    with stops.handled():
        print("ready", flush=True)
        time.sleep(30)
except stops.Interrupted as stop:
    print("stopping: closing the runs", flush=True)  # to the terminal that is gone
    open({str(done)!r}, "w").write(stop.__class__.__name__ + " " + str(stop.signum))
    sys.exit(stop.exit_status)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGHUP)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 129, err
    assert done.read_text() == f"Interrupted {int(signal.SIGHUP)}"
    assert out == "" and "Traceback" not in err  # nothing more reached the closed terminal


def test_native_stderr_is_quiet_inside_and_back_after(capfd) -> None:
    """A library's native log lines (Ray's, at its shutdown after a stop) written to file descriptor 2 are not
    shown; what is written after is."""
    import os

    from prunetune.stops import native_stderr_quiet

    with native_stderr_quiet():
        os.write(2, b"task_manager.cc:123 a cancelled task failed\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"
