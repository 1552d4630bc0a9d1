"""bench/seed_table.py: the seed table's configurations, read back as trials on new seeds."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from prunetune.config import TrialConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seed_table():
    spec = importlib.util.spec_from_file_location("prunetune_bench_seed_table", REPO / "bench" / "seed_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture
def table(tmp_path: Path, seed_table) -> Path:
    rows = (
        [("full", "[0, 1, 2, 3, 4, 5]", 0, "reference", "0.0002", 2, seed, 0.68 + seed / 100) for seed in (0, 1)]
        + [
            ("window:0:2", "[2, 3, 4, 5]", 2, "pruned", lr, 2, seed, 0.6)
            for lr in ("0.0002", "0.0004")
            for seed in (0, 1)
        ]
        + [("scratch:2", "[0, 1]", 4, "scratch", "0.0002", 2, 0, 0.3)]
    )
    path = tmp_path / "table.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(seed_table.COLUMNS)
        writer.writerows(rows)
    return path


def test_each_configuration_and_learning_rate_once_without_its_seeds(seed_table, table: Path) -> None:
    points = seed_table.table_points(table, ["reference", "pruned"])
    assert [(p["config"], p["learning_rate"]) for p in points] == [
        ("full", "0.0002"), ("window:0:2", "0.0002"), ("window:0:2", "0.0004"),
    ]  # fmt: skip
    assert all("seed" not in p and "val_score" not in p for p in points)
    assert seed_table.table_points(table, ["scratch"])[0]["layers_dropped"] == "4"


def test_a_point_becomes_its_trial_on_the_new_seed(seed_table, table: Path) -> None:
    base = TrialConfig.from_dict({"model": "prajjwal1/bert-tiny", "task": "classification"})
    reference, pruned, _ = seed_table.table_points(table, ["reference", "pruned"])
    trial = seed_table.trial_config(base, pruned, 7)
    assert trial.kept_layers == (2, 3, 4, 5)
    assert (trial.training.learning_rate, trial.training.epochs, trial.training.seed) == (2e-4, 2, 7)
    assert seed_table.trial_config(base, reference, 3).kept_layers is None  # the full model: no surgery


def test_rows_already_written_are_not_trained_again(seed_table, tmp_path: Path) -> None:
    output = tmp_path / "seeds.csv"
    assert seed_table.trained_rows(output) == set()
    assert output.read_text().splitlines() == [",".join(seed_table.COLUMNS)]
    with output.open("a", newline="") as handle:
        csv.writer(handle).writerow(["window:0:2", json.dumps([2, 3, 4, 5]), 2, "pruned", "0.0002", 2, 3, 0.61])
    assert seed_table.trained_rows(output) == {("window:0:2", "0.0002", "2", "3")}


def test_the_same_configurations_in_another_setting_take_its_learning_rates_and_epochs(seed_table, table: Path) -> None:
    """--learning-rates (the STS-B table): every configuration at each given rate, the epochs the spec's; a pilot's
    --configs keeps only those named; a random-init row becomes a scratch trial at its depth."""
    points = seed_table.table_points(table, ["reference", "pruned"], learning_rates=[1e-4, 8e-4], epochs=1)
    assert [(p["config"], p["learning_rate"], p["epochs"]) for p in points] == [
        ("full", "0.0001", "1"), ("full", "0.0008", "1"), ("window:0:2", "0.0001", "1"), ("window:0:2", "0.0008", "1"),
    ]  # fmt: skip
    pilot = seed_table.table_points(table, ["reference", "pruned"], ["full"], [1e-4], 1)
    assert [p["config"] for p in pilot] == ["full"]
    rows = [{**p, "variant": "random-init"} for p in seed_table.table_points(table, ["scratch"])]
    base = TrialConfig.from_dict({"model": "prajjwal1/bert-tiny", "task": "sentence-similarity"})
    scratch = seed_table.trial_config(base, rows[0], 3)
    assert (scratch.variant, scratch.kept_layers, scratch.training.seed) == ("scratch", (0, 1), 3)
    assert seed_table.trial_config(base, points[2], 3).variant == "pruned"
