"""What prunetune's searcher needs of Ray's and Optuna's internals, in one place.

Everything else in prunetune uses the libraries' public APIs. Two needs have none:

* **Ray's ``OptunaSearch`` keeps its Optuna study and trials in private attributes** (``_ot_study``,
  ``_ot_trials``, ``_completed_trials``) and offers no accessor. :class:`~prunetune.search.searcher.BudgetSearch`
  must reach the Optuna trial of a Tune trial (to set its constraint, its user attributes, and to tell a
  PRUNED or repeated one), so it reads them through the functions below. :func:`check_private_state` runs
  when a searcher is built: a Ray release that renamed them stops the search before any work, with a line
  that names the attribute and the fix, instead of an ``AttributeError`` mid-search.
* **Tune pickles its searcher** when a search starts (``tuner.pkl``) and at every checkpoint, and with it the
  Optuna study and sampler the searcher holds. Since Optuna 5.1 the genetic samplers (NSGA-II, the
  multi-objective search) hold a ``threading.Lock``, which cannot be pickled. :class:`LocksMadeAnew` leaves
  locks out of the pickled state and makes them anew when unpickled, as Optuna's own storages do for theirs;
  :func:`make_sampler` builds the samplers prunetune uses with it.

``tests/unit/test_upstream.py`` checks both against the installed releases; ``scripts/test --latest`` runs it
on the newest releases ``pyproject.toml`` allows.
"""

from __future__ import annotations

import threading
from typing import Any

from prunetune.errors import PrunetuneError
from prunetune.libs import optuna, ray

# Ray's OptunaSearch's private state that prunetune reads (ray[tune] 2.40 to 2.60 at least).
PRIVATE_STATE = ("_ot_study", "_ot_trials", "_completed_trials")


class UnsupportedRelease(PrunetuneError):
    """An installed library changed what prunetune relies on: the fix is the tested versions."""


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


def check_private_state(searcher: Any) -> None:
    """Refuse a Ray release whose ``OptunaSearch`` no longer keeps the state prunetune reads."""
    missing = [name for name in PRIVATE_STATE if not hasattr(searcher, name)]
    if missing:
        raise UnsupportedRelease(
            f"ray {ray.__version__}: Ray Tune's OptunaSearch no longer has {', '.join(missing)}, which prunetune's "
            "searcher reads (search/upstream.py); install the tested versions "
            "(pip install -c constraints.txt -e '.[search]') or a ray[tune] that pyproject.toml allows"
        )


def study(searcher: Any) -> Any:
    """The Optuna study Ray's OptunaSearch created (it does so in its constructor when given a space)."""
    value = searcher._ot_study
    assert value is not None, "OptunaSearch builds its study when given a search space"
    return value


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """Tune's trial id -> the live Optuna trial Ray asked for it (Ray drops it once told)."""
    trials: dict[str, Any] = searcher._ot_trials
    return trials


def completed_trials(searcher: Any) -> set[str]:
    """Tune's trial ids whose outcome Ray's OptunaSearch has handled."""
    done: set[str] = searcher._completed_trials
    return done
