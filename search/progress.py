"""Progress a person can read, instead of Ray's tables: one line whenever a trial ends."""

from __future__ import annotations

import time
from typing import Any

from prunetune.search.context import Say
from prunetune.search.spec import SearchSpec

from prunetune.records import COMPLETE, preference, trial_status

__all__ = ["Progress", "clock", "time_left"]


class Progress:
    """The progress line, told Tune's events by the search's Tune callback
    (:class:`prunetune.search.tuner.TuneEvents`)."""

    def __init__(self, spec: SearchSpec, say: Say = print) -> None:
        self.total = spec.trials
        # An unset count runs at least min_trials, then on while an answer is open (search/frontier.py).
        self.least = spec.min_trials or spec.trials
        self.say = say
        self.started = time.monotonic()
        self.done = self.early = self.failed = 0
        self.best: tuple[int, float, str] | None = None

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        config = trial.config["trial"]
        self.done += 1
        if trial_status(config["training"]["epochs"], int(result.get("epoch", 0))) != COMPLETE:
            self.early += 1
        elif result.get("feasible"):
            key = preference(result["layers_dropped"], result["val_score"])
            if self.best is None or key > self.best[:2]:
                what = f"{config['drop']['strategy']} kept {config['kept_layers']}"
                self.best = (*key, what)
        self._line(trials, trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.done += 1
        self.failed += 1
        self._line(trials, trial)

    def _line(self, trials: list[Any], ended: Any) -> None:
        running = sum(1 for t in trials if t.status == "RUNNING" and t is not ended)
        elapsed = time.monotonic() - self.started
        # The pace to the least count while below it; past it the search may stop at any trial, so to the most.
        left = time_left(elapsed, self.done, self.least if self.done < self.least else self.total)
        total = f"{self.total}" if self.least == self.total else f"{self.least}–{self.total}"
        best = (
            f"best within budget: {self.best[0]} layers dropped, score {self.best[1]:.4f} ({self.best[2]})"
            if self.best
            else "nothing within budget yet"
        )
        self.say(
            f"[{clock(elapsed)}] trials {self.done}/{total} done ({self.early} stopped early, "
            f"{self.failed} failed), {running} running · {best} · about {clock(left)} to go"
        )


def time_left(elapsed: float, done: int, total: int) -> float:
    """What is left at the pace so far (jobs that run side by side finish at that pace too)."""
    return elapsed / done * (total - done) if done else 0.0


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:02d}:{seconds:02d}"
