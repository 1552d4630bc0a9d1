"""The search's Optuna study: where it lives, its name, and its housekeeping after Tune (light: no Ray)."""

from __future__ import annotations

from prunetune.search.spec import SearchSpec

from prunetune.libs import optuna

__all__ = ["fail_orphaned_trials", "study_name", "study_url"]


def study_url(spec: SearchSpec) -> str:
    """The Optuna storage of every search in the spec's storage folder (optuna-dashboard opens it)."""
    return f"sqlite:///{spec.storage / 'optuna.db'}"


def study_name(spec: SearchSpec, parent_run_id: str) -> str:
    """The search's study: its name and its MLflow run's id, so a search run again under one name gets its own."""
    return f"{spec.name}-{parent_run_id[:8]}"


def fail_orphaned_trials(spec: SearchSpec, parent_run_id: str) -> int:
    """Optuna trials still RUNNING once Tune has finished belong to trials lost with a killed driver:
    told FAIL, so the study (and optuna-dashboard) shows no trial running for ever. Returns how many."""
    name = study_name(spec, parent_run_id)
    storage = study_url(spec)
    if name not in optuna.study.get_all_study_names(storage):
        return 0
    study = optuna.load_study(study_name=name, storage=storage)
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in orphans:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)
