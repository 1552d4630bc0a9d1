"""What prunetune needs of Ray's and Optuna's internals (search/upstream.py), checked on the installed releases.

A failure here names the library, the attribute and where prunetune reads it: `scripts/test --latest` runs this
file on the newest releases pyproject.toml allows, before the lock is refreshed.
"""

import pickle
import threading

import optuna
import pytest
import ray
from prunetune.search.searcher import BudgetSearch
from prunetune.search.spec import load_spec
from prunetune.search.upstream import (
    PRIVATE_STATE,
    NSGAIISampler,
    TPESampler,
    UnsupportedRelease,
    check_private_state,
)
from ray.tune.search.optuna import OptunaSearch

pytestmark = pytest.mark.upstream  # touches Ray's, Optuna's or MLflow's internals: scripts/test --latest


def test_ray_optuna_search_still_keeps_the_state_prunetune_reads() -> None:
    searcher = OptunaSearch(space={"x": optuna.distributions.FloatDistribution(0, 1)}, metric="m", mode="max")
    missing = [name for name in PRIVATE_STATE if not hasattr(searcher, name)]
    assert not missing, (
        f"ray {ray.__version__}: OptunaSearch lost {missing}; search/upstream.py reads them. Find the new home of "
        "the Optuna study and trials in ray/tune/search/optuna/optuna_search.py and change upstream.py alone"
    )
    assert isinstance(searcher._ot_trials, dict) and isinstance(searcher._completed_trials, set)
    assert isinstance(searcher._ot_study, optuna.Study)


def test_a_searcher_without_that_state_is_refused_in_one_line() -> None:
    class Renamed:
        _ot_study = None

    with pytest.raises(UnsupportedRelease, match="_ot_trials, _completed_trials.*constraints.txt"):
        check_private_state(Renamed())


@pytest.mark.parametrize("sampler_class", [NSGAIISampler, TPESampler])
def test_samplers_pickle_and_come_back_with_working_locks(sampler_class) -> None:
    sampler = sampler_class(seed=3)
    copy = pickle.loads(pickle.dumps(sampler))
    assert type(copy) is sampler_class
    for name, value in vars(sampler).items():
        if isinstance(value, type(threading.Lock())):
            made_anew = getattr(copy, name)
            assert made_anew is not value and made_anew.acquire(blocking=False), f"{name} must come back unheld"
            made_anew.release()
    # The genetic samplers key their generations by class name: ours keep Optuna's.
    assert sampler_class.__name__ == sampler_class.__mro__[2].__name__


@pytest.mark.parametrize("objective", ["multi", "constrained"])
def test_the_searcher_pickles_as_tune_does_and_goes_on_suggesting(tmp_path, objective) -> None:
    """Tune pickles the searcher into tuner.pkl when a search starts, and saves it at every checkpoint; with
    Optuna 5.1's NSGA-II that raised "cannot pickle '_thread.lock' object" and no multi-objective search started."""
    spec = load_spec(None, {"objective": objective, "space.strategies": "[top, bottom]", "space.epochs": "[2, 2]"})
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    search = BudgetSearch(spec, 6, None, anchor_lr=2e-4, storage=storage, study_name="s")
    first = search.suggest("t0")
    result = {"epoch": 2, "val_score": 0.6, "layers_kept": 4, "objective": 2.6, "budget_excess": -0.01}
    search.on_trial_complete("t0", result)
    copy = pickle.loads(pickle.dumps(search))  # as tune.Tuner does
    second = copy.suggest("t1")
    assert second["trial"]["kept_layers"] != first["trial"]["kept_layers"] or (
        second["trial"]["training"] != first["trial"]["training"]
    ), "the copy knows the first point was run"
    copy.save(str(tmp_path / "searcher.pkl"))  # as Tune's checkpoint does
    restored = BudgetSearch(spec, 6, None, anchor_lr=2e-4, storage=storage, study_name="s")
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.recorded(first["optuna_trial"]).state == optuna.trial.TrialState.COMPLETE
    assert restored.suggest("t2") is not None
