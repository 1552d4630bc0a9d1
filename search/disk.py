"""Disk a search keeps bounded: a finished trial's checkpoint is deleted, and Ray's trial folders get short
names. A checkpoint is a trial's whole training state (weights and optimizer: about 270 MB for MiniLM);
kept for every trial, a 1,000-trial search would hold about 200 GB."""

from __future__ import annotations

from typing import Any

from ray.tune import Callback

from prunetune.libs import pa_fs


class DropFinishedCheckpoints(Callback):
    """Once a trial has finished (or was stopped early), nothing resumes it: its checkpoint folders go.
    A trial that failed keeps its own, for ``--resume`` to retry it from there."""

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        filesystem, folder = trial.storage.storage_filesystem, trial.path
        for entry in filesystem.get_file_info(pa_fs.FileSelector(folder, allow_not_found=True)):
            if entry.type == pa_fs.FileType.Directory and entry.base_name.startswith("checkpoint_"):
                filesystem.delete_dir(entry.path)


def trial_folder_name(trial: Any) -> str:
    """A trial's folder: its short id and strategy (Ray's default is 100 characters of config values)."""
    return f"{trial.trial_id}-{trial.config['trial']['drop']['strategy']}"
