"""One stop path for SIGINT (Ctrl-C), SIGTERM (a scheduler, Kubernetes, systemd, ``timeout``) and SIGHUP (a closed
terminal: an SSH connection that drops, a terminal multiplexer killed).

While a command that trains runs, :func:`handled` owns the three signals. The first one:

* outside Tune's loop (the reference sweep, the baselines, the teacher, the re-checks, the answer's model)
  raises :class:`Interrupted` in the driver's main thread, wherever it waits; the command closes what it
  opened and exits ``128 + signal``;
* inside Tune's loop (:func:`tune_loop`) asks Tune to stop as its own Ctrl-C does: it stops the running
  trials and saves its experiment state one last time, then ``fit`` returns and the driver raises
  :class:`Interrupted` itself (:func:`raise_if_requested`).

A second signal, during that clean-up, ends the process at once; ``--resume`` closes what is left, as it does
after a kill. ``Interrupted`` is a ``KeyboardInterrupt``: no ``except Exception`` swallows it, and Ray's
``ray.get``, which turns an interrupt inside its wait into a plain ``KeyboardInterrupt``, keeps it one (the
signal is read back from :func:`requested`).

stdlib only: the CLI and every layer of the search use it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = [
    "STOP_SIGNALS", "Interrupted", "handled", "interrupted", "native_stderr_quiet", "raise_if_requested", "reclaim",
    "requested", "tune_loop",
]  # fmt: skip


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"  # Tune reads it when fit starts


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal; ``done`` says how far it got (e.g. "after 1 of 4 trials")."""

    def __init__(self, signum: int, done: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.done = done

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP


class _State:
    signum: int | None = None  # the first stop signal received, while handled
    in_tune: Callable[[], bool] | None = None  # asks Tune's running loop to stop; False: it cannot yet


_state = _State()


def requested() -> int | None:
    """The stop signal received so far (None: none)."""
    return _state.signum


def interrupted(done: str = "") -> Interrupted:
    """The :class:`Interrupted` for the signal received (SIGINT when a bare KeyboardInterrupt came first)."""
    return Interrupted(_state.signum or signal.SIGINT, done)


def raise_if_requested(done: str = "") -> None:
    if _state.signum is not None:
        raise interrupted(done)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state.signum is not None:  # the second: the user will not wait for the clean-up
        sys.stderr.write(f"{signal.Signals(signum).name} again: stopped at once; --resume closes what is left\n")
        sys.stderr.flush()
        os._exit(128 + signum)
    _state.signum = signum
    if signum == signal.SIGHUP:
        _detach_from_terminal()
    if _state.in_tune is not None and _state.in_tune():
        return  # Tune stops its trials and saves its state; fit returns, and the driver raises
    raise Interrupted(signum)


def _detach_from_terminal() -> None:
    """After SIGHUP the terminal is gone: a write to it fails (EIO), and the clean-up that closes the runs prints
    as it goes. Standard output and error, Python's and the file descriptors' (Ray's native logs), go to
    /dev/null, so the clean-up runs to its end."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # lives as long as the process
    except OSError:
        pass


@contextmanager
def native_stderr_quiet() -> Iterator[None]:
    """Inside: file descriptor 2 (what native code writes to: Ray's core worker) goes to /dev/null; Python's own
    ``sys.stderr`` is flushed before and after, and writes nothing meanwhile. For a library's shutdown after a
    stop, whose native log lines repeat what the stop line says."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no descriptor to spare: the lines show, nothing else changes
        yield
        return
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the command through :class:`Interrupted` while inside (main thread only)."""
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _on_signal)
    # Tune's own Ctrl-C handler would replace ours for SIGINT during fit: ours routes it (tune_loop).
    tune_switch = os.environ.get(_TUNE_SIGINT)
    os.environ[_TUNE_SIGINT] = "1"
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if tune_switch is None:
            os.environ.pop(_TUNE_SIGINT, None)
        else:
            os.environ[_TUNE_SIGINT] = tune_switch
        _state.signum, _state.in_tune = None, None


def reclaim() -> None:
    """Take the stop signals back after a library installed its own (``ray.init`` installs a SIGTERM handler that
    exits at once, and Ray's core dumps a native stack on SIGTERM): a no-op outside :func:`handled`."""
    if any(signal.getsignal(s) is _on_signal for s in STOP_SIGNALS):
        for s in STOP_SIGNALS:
            signal.signal(s, _on_signal)


@contextmanager
def tune_loop() -> Iterator[None]:
    """While Tune's ``fit`` runs: a stop signal asks Tune to end gracefully, through the SIGUSR1 handler Tune
    installs for exactly this (its documented way to stop a run it cannot get SIGINT for)."""

    def stop_tune() -> bool:
        handler = signal.getsignal(signal.SIGUSR1)
        if not callable(handler):  # fit has not installed it yet: nothing of Tune's to save
            return False
        handler(signal.SIGUSR1, None)
        return True

    _state.in_tune = stop_tune
    try:
        yield
    finally:
        _state.in_tune = None
