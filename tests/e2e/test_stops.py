"""Ctrl-C, SIGTERM and SIGHUP (a closed terminal) stop a real driver cleanly in every phase, and --resume finishes
what they stopped.

Each case is a real `prunetune search` or `max-drop` process on the three-node cluster, recording in a real
`mlflow server`; the signal goes to its whole process group, as a terminal's Ctrl-C or a scheduler's stop does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import child_runs, tiny_spec

# (phase, signal, command, the progress line after which the signal is sent)
FAST = [
    # A closed terminal during the reference sweep left 3 runs RUNNING before SIGHUP was handled (issue 38).
    ("reference", signal.SIGHUP, "search", "reference: 0 runs reused"),
    ("trials", signal.SIGINT, "search", "trials 1/8 done"),
]
SLOW = [  # the same paths by the other signals, and max-drop (2 minutes): with -m slow only
    ("reference", signal.SIGTERM, "search", "reference: 0 runs reused"),
    ("reference", signal.SIGINT, "search", "reference: 0 runs reused"),
    ("trials", signal.SIGTERM, "search", "trials 1/8 done"),
    ("re-checks", signal.SIGINT, "max-drop", "re-checking"),
    ("re-checks", signal.SIGTERM, "max-drop", "re-checking"),
]
CASES = [pytest.param(*case, id=f"{case[0]}-{case[1].name}") for case in FAST] + [
    pytest.param(*case, id=f"{case[0]}-{case[1].name}", marks=pytest.mark.slow) for case in SLOW
]


def _running_runs(spec) -> list[str]:
    client = MlflowClient(spec.tracking_uri)
    experiment = client.get_experiment_by_name(spec.name).experiment_id
    return [r.info.run_name for r in client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")]


def _running_optuna_trials(spec) -> int:
    import optuna

    storage = f"sqlite:///{spec.storage / 'optuna.db'}"
    names = optuna.study.get_all_study_names(storage) if (spec.storage / "optuna.db").exists() else []
    states = [t.state for name in names for t in optuna.load_study(study_name=name, storage=storage).trials]
    return sum(state == optuna.trial.TrialState.RUNNING for state in states)


@pytest.mark.parametrize(("phase", "signum", "command", "marker"), CASES)
def test_a_stop_signal_ends_in_one_line_closes_every_run_and_resume_finishes(
    ray_cluster, mlflow_server, tiny_model, data_env, tmp_path, phase, signum, command, marker
) -> None:
    import yaml

    spec = tiny_spec(
        tmp_path,
        tiny_model,
        mlflow_server,
        ray_cluster,
        num_trials=8 if phase == "trials" else 4,  # tiny trials take seconds: enough left to stop
        max_concurrent=2,
        scheduler="none",
        seeds=2 if command == "max-drop" else 1,
        max_finalists=1,
        **{"budget.tolerance": 0.5},  # every trial a finalist: max-drop re-checks
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.to_dict()))
    argv = [sys.executable, "-m", "prunetune.cli", command, str(spec_file)]
    argv += ["--tolerance", "0.5"] if command == "max-drop" else []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    driver = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    seen, deadline = [], time.monotonic() + 420
    try:
        for line in driver.stdout:
            seen.append(line)
            if marker in line or time.monotonic() > deadline:
                break
        assert any(marker in line for line in seen), "".join(seen[-30:])
        if phase == "reference":
            time.sleep(2)  # into the phase's jobs; tiny re-checks take under a second: signalled at once
        os.killpg(driver.pid, signum)
        rest, _ = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    output = "".join(seen) + rest
    assert driver.returncode == 128 + signum, output[-3000:]
    assert "Traceback" not in output and "SIGTERM received" not in output, output[-3000:]
    assert "task_manager.cc" not in output, output[-3000:]  # Ray's native lines as it cancels the jobs
    last = output.strip().splitlines()[-1]
    if signum == signal.SIGHUP:  # the terminal is gone: the driver writes nothing more, and still closes its runs
        assert rest == "", rest[-3000:]
    else:
        assert last.startswith(f"prunetune {command}: interrupted by {signum.name}"), last
        assert last.endswith(
            f"continue with prunetune {command} {spec_file}"
            + (" --tolerance 0.5" if command == "max-drop" else "")
            + " --resume"
        ), last
    if phase == "trials":
        done = int(re.search(r"after (\d+) of 8 trials", last).group(1))
        assert 1 <= done < 8, last
    assert _running_runs(spec) == [], "nothing is left RUNNING"
    assert _running_optuna_trials(spec) == 0
    client = MlflowClient(spec.tracking_uri)
    parent = (spec.storage / spec.name / "parent_run_id").read_text().strip()
    search_run = client.get_run(parent)
    if command == "search":  # an interrupted search is never presented as finished
        assert (search_run.info.status, search_run.data.tags.get("prunetune.status")) == ("KILLED", "interrupted")
        assert "widen it" not in output and not (spec.storage / spec.name / "model").exists()
    statuses = {r.data.tags.get("prunetune.status") for r in child_runs(spec, parent, kind=None)}
    assert "early-stopped" not in statuses  # scheduler none: only a signal cuts a trial short

    resumed = subprocess.run([*argv, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert _running_runs(spec) == [] and _running_optuna_trials(spec) == 0
    trials = child_runs(spec, parent)
    recorded = [r.data.tags["prunetune.ray_trial_id"] for r in trials]
    assert len(recorded) == len(set(recorded)), "no trial recorded twice"
    complete = [r for r in trials if r.data.tags.get("prunetune.status") == "complete"]
    assert len(complete) == (8 if phase == "trials" else 4), [
        (r.info.run_name, r.data.tags.get("prunetune.status")) for r in trials
    ]
    assert client.get_run(parent).info.status == "FINISHED"
