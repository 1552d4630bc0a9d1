"""A real Ray cluster (a head and two worker nodes, started with `ray start`) and a real `mlflow server`.

Each fixture starts its own processes in its own temp dir and stops exactly those (never `ray stop`,
which would kill every Ray process of the user).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.helpers import BIN, free_port, start_mlflow_server, stop_server


def _kill_tree_matching(marker: str) -> None:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


RAY_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def ray_start(*args: str) -> None:
    subprocess.run(
        [BIN / "ray", "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats", *args],
        check=True,
        env=RAY_ENV,
        capture_output=True,
        timeout=180,
    )


def start_head(temp: str, *args: str) -> str:
    port = free_port()
    ray_start("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", *args)
    return f"127.0.0.1:{port}"


def stop_nodes(temp: str, address: str) -> None:
    """Kill exactly this cluster's processes (found by its temp dir and address), never `ray stop`."""
    _kill_tree_matching(temp)
    _kill_tree_matching(f"--gcs-address={address}")
    _kill_tree_matching(f"--address={address}")
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster():
    """`ray start` head (1 CPU) + 2 workers (1 CPU each); yields the address."""
    temp = tempfile.mkdtemp(prefix="ptray")  # a short name: Ray's socket paths have a length limit
    address = start_head(temp, "--num-cpus=1")
    try:
        for _ in range(2):
            ray_start(f"--address={address}", "--num-cpus=1", '--resources={"worker_node": 1}')
        yield address
    finally:
        stop_nodes(temp, address)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` with a SQLite backend on a free loopback port; yields its URI."""
    port = free_port()
    proc = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


@pytest.fixture
def gpu_node_cluster():
    """One `ray start` node declaring 2 logical GPUs and 4 CPUs (no real GPU needed)."""
    temp = tempfile.mkdtemp(prefix="ptgpu")
    address = start_head(temp, "--num-cpus=4", "--num-gpus=2")
    try:
        yield address
    finally:
        stop_nodes(temp, address)
