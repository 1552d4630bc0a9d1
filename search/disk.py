"""Disk a search keeps bounded: a finished trial's checkpoint is deleted. A checkpoint is a trial's whole training
state (weights and optimizer: about 270 MB for MiniLM); kept for every trial, a 1,000-trial search would hold
about 200 GB."""

from __future__ import annotations

from typing import Any

from prunetune.libs import pa_fs

__all__ = ["DropFinishedCheckpoints"]


class DropFinishedCheckpoints:
    """Once a trial has finished (or was stopped early), nothing resumes it: its checkpoint folders go.
    A trial that failed keeps its own, for ``--resume`` to retry it from there. Told Tune's events by the search's
    Tune callback (:class:`prunetune.search.tuner.TuneEvents`)."""

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        filesystem, folder = trial.storage.storage_filesystem, trial.path
        for entry in filesystem.get_file_info(pa_fs.FileSelector(folder, allow_not_found=True)):
            if entry.type == pa_fs.FileType.Directory and entry.base_name.startswith("checkpoint_"):
                filesystem.delete_dir(entry.path)
