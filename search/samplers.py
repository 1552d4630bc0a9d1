"""The search's Optuna samplers, made to survive Tune's pickling.

Tune pickles its searcher when a search starts (``tuner.pkl``) and at every checkpoint, and with it the Optuna
study and sampler the searcher holds. Since Optuna 5.1 the genetic samplers (NSGA-II, the multi-objective
search) hold a ``threading.Lock``, which cannot be pickled. :class:`LocksMadeAnew` leaves locks out of the
pickled state and makes them anew when unpickled, as Optuna's own storages do for theirs; :func:`make_sampler`
builds the samplers prunetune uses with it.

``tests/unit/test_samplers.py`` checks this against the installed releases; ``scripts/test --latest`` runs it on
the newest releases ``pyproject.toml`` allows.
"""

from __future__ import annotations

import threading
from typing import Any

from prunetune.libs import optuna

__all__ = ["LocksMadeAnew", "NSGAIISampler", "TPESampler", "TPE_STARTUP_TRIALS", "make_sampler"]


_LOCK_TYPES = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}
_LOCKS_KEY = "__prunetune_locks__"  # names of the locks left out of a pickled state, and their kind


class LocksMadeAnew:
    """Pickles without its threading locks, and makes them anew (unheld) when unpickled: a lock guards one
    process's threads, so none has anything to carry to another process or a later run."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        locks = {name: _LOCK_TYPES[type(value)] for name, value in state.items() if type(value) in _LOCK_TYPES}
        for name in locks:
            del state[name]
        state[_LOCKS_KEY] = {name: kind is threading.RLock for name, kind in locks.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        locks = state.pop(_LOCKS_KEY, {})
        self.__dict__.update(state)
        for name, reentrant in locks.items():
            setattr(self, name, threading.RLock() if reentrant else threading.Lock())


# The class names stay Optuna's: a genetic sampler keys its generations in the study by its class's name
# (``NSGAIISampler:generation``), so a study begun with Optuna's own class resumes with this one and back.
class NSGAIISampler(LocksMadeAnew, optuna.samplers.NSGAIISampler):
    pass


class TPESampler(LocksMadeAnew, optuna.samplers.TPESampler):
    pass


# Random trials before TPE models the space. 8 and 12 were measured on the replay and were no better
# (docs/benchmarks.md §1e).
TPE_STARTUP_TRIALS = 4


def make_sampler(multi_objective: bool, seed: int | None) -> optuna.samplers.BaseSampler:
    """The search's sampler: NSGA-II for a Pareto front, else TPE (:data:`TPE_STARTUP_TRIALS` random trials
    first)."""
    if multi_objective:
        return NSGAIISampler(seed=seed)
    return TPESampler(seed=seed, n_startup_trials=TPE_STARTUP_TRIALS)
