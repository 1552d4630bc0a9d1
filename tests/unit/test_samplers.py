"""The search's samplers and searcher survive Tune's pickling (search/samplers.py), checked on the installed releases.

`scripts/test --latest` runs this file on the newest releases pyproject.toml allows, before the lock is refreshed.
"""

import pickle
import threading

import optuna
import pytest
from prunetune.search.samplers import NSGAIISampler, TPESampler
from prunetune.search.searcher import BudgetSearch
from prunetune.search.spec import load_spec

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


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


def test_the_searcher_tells_optuna_every_outcome_through_its_public_api(tmp_path) -> None:
    """Intermediate values per epoch, FAIL on an error, both values of a Pareto search; an outcome Tune repeats
    (as it may after a resume) is told once."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = load_spec(None, {"space.strategies": "[top, bottom]", "space.epochs": "[2, 2]"})
    search = BudgetSearch(spec, 6, None, anchor_lr=2e-4, storage=optuna.storages.RDBStorage(storage), study_name="s")
    ran, failed = search.suggest("ran"), search.suggest("failed")
    search.on_trial_result("ran", {"epoch": 1, "objective": 1.5, "val_score": 0.5, "drop": 0.02})
    search.on_trial_complete(
        "ran", {"epoch": 2, "objective": 2.6, "val_score": 0.6, "drop": 0.01, "budget_excess": -0.01}
    )
    search.on_trial_complete("ran", {"epoch": 2, "objective": 9.9, "budget_excess": 0.5})  # repeated: ignored
    search.on_trial_result("ran", {"epoch": 3, "objective": 9.9})  # after the outcome: ignored
    search.on_trial_complete("failed", None, error=True)
    trials = {t.number: t for t in optuna.load_study(study_name="s", storage=storage).get_trials()}
    done = trials[ran["optuna_trial"]]
    assert done.state == optuna.trial.TrialState.COMPLETE and done.value == 2.6
    assert done.intermediate_values == {1: 1.5, 2: 2.6} and done.user_attrs["drop"] == 0.01
    assert done.constraints == {"acc_drop_excess": -0.01}
    assert trials[failed["optuna_trial"]].state == optuna.trial.TrialState.FAIL

    multi = BudgetSearch(load_spec(None, {"objective": "multi", "space.epochs": "[2, 2]"}), 6, None, anchor_lr=2e-4)
    config = multi.suggest("m")
    multi.on_trial_complete("m", {"epoch": 2, "val_score": 0.61, "layers_kept": 4})
    told = multi.study.get_trials()[config["optuna_trial"]]
    assert told.state == optuna.trial.TrialState.COMPLETE and told.values == [0.61, 4.0]


def test_a_resumed_searcher_takes_an_outcome_the_study_recorded_after_its_checkpoint_as_told(tmp_path) -> None:
    """Tune restores its searcher from the last checkpoint; a trial that finished after it is re-run by Tune but
    told to Optuna once (the study's record is kept)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")
    spec = load_spec(None, {"space.strategies": "[top, bottom]", "space.epochs": "[2, 2]"})
    search = BudgetSearch(spec, 6, None, anchor_lr=2e-4, storage=storage, study_name="s")
    config = search.suggest("t0")
    search.save(str(tmp_path / "searcher.pkl"))  # the checkpoint sees t0 running
    search.on_trial_complete("t0", {"epoch": 2, "objective": 2.6, "budget_excess": -0.01})  # after it
    restored = BudgetSearch(spec, 6, None, anchor_lr=2e-4, storage=storage, study_name="s")
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.live("t0") is None
    restored.on_trial_complete("t0", {"epoch": 2, "objective": 9.9, "budget_excess": 0.5})  # Tune's re-run
    assert restored.recorded(config["optuna_trial"]).value == 2.6
