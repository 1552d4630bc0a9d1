from __future__ import annotations

import pytest
from prunetune.search.searcher import BudgetSearch, budget_excess, check_space, objective
from prunetune.search.spec import SearchSpec, load_spec, reference_key
from prunetune.trainables.config import ConfigError
from prunetune.trainables.strategies import StrategyError, kept_layers


def test_spec_rejects_unknown_keys_and_impossible_values_naming_them(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'budget.tolerence'"):
        load_spec(None, {"budget.tolerence": "0.01"})
    with pytest.raises(ConfigError, match="unknown key 'trial.training.lr'"):
        load_spec(None, {"trial.training.lr": "1e-4"})
    with pytest.raises(ConfigError, match="num_trials=0"):
        load_spec(None, {"num_trials": "0"})
    with pytest.raises(ConfigError, match=r"space.learning_rate=\[0.001, 0.0001\]"):
        load_spec(None, {"space.learning_rate": "[1e-3, 1e-4]"})
    with pytest.raises(ConfigError, match="objective='best' is not one of"):
        load_spec(None, {"objective": "best"})
    path = tmp_path / "spec.yaml"
    path.write_text("name: s\nspace:\n  strategies: [top, window]\nbudget:\n  tolerance: 0.02\n")
    spec = load_spec(str(path), {"num_trials": "3"})
    assert (spec.name, spec.space.strategies, spec.budget.tolerance, spec.num_trials) == (
        "s",
        ("top", "window"),
        0.02,
        3,
    )


def test_strategies_that_cannot_fit_the_model_are_refused_before_any_trial() -> None:
    with pytest.raises(StrategyError, match=r"cannot fit .*\(6 layers\)"):
        check_space(load_spec(None, {"space.min_count": "6"}), 6)
    with pytest.raises(StrategyError, match="'explicit' cannot be searched"):
        check_space(load_spec(None, {"space.strategies": "[top, explicit]"}), 6)
    with pytest.raises(StrategyError, match="unknown strategy 'sideways'"):
        check_space(load_spec(None, {"space.strategies": "[sideways]"}), 6)


def test_budget_and_objective_rank_every_feasible_trial_above_every_infeasible_one() -> None:
    spec = SearchSpec()
    assert budget_excess(spec, 0.80, 0.795) == pytest.approx(-0.005)
    assert budget_excess(spec.with_overrides({"budget.relative": True}), 0.80, 0.79) == pytest.approx(0.0025)
    feasible_low = objective(0, 0.3, -0.001)
    infeasible_high = objective(5, 0.99, 0.001)
    assert feasible_low > infeasible_high
    assert objective(3, 0.7, -0.01) > objective(2, 0.99, -0.01)  # more layers dropped wins
    assert objective(3, 0.8, -0.01) > objective(3, 0.7, -0.01)  # ties settled by score


def test_reference_key_ignores_what_the_search_changes() -> None:
    spec = SearchSpec()
    assert reference_key(spec.trial) == reference_key(
        spec.trial.with_overrides({"drop.strategy": "top", "drop.count": 2})
    )
    assert reference_key(spec.trial) != reference_key(spec.trial.with_overrides({"training.seed": 7}))


def test_budget_search_decides_kept_layers_and_tells_optuna_the_truth() -> None:
    import optuna

    spec = load_spec(None, {"space.strategies": "[top, middle, window]", "space.epochs": "[2, 2]"})
    search = BudgetSearch(spec, 6, None)
    configs = {f"t{i}": search.suggest(f"t{i}") for i in range(6)}
    for config in configs.values():
        trial = config["trial"]
        drop = trial["drop"]
        params = {"count": drop["count"]} | (
            {"start_fraction": drop["start_fraction"]} if drop["strategy"] == "window" else {}
        )
        assert tuple(trial["kept_layers"]) == kept_layers(drop["strategy"], 6, params)
        assert trial["training"]["epochs"] == 2
    full = {"epoch": 2, "objective": 2.8, "budget_excess": -0.01}
    search.on_trial_complete("t0", full)
    search.on_trial_complete("t1", {"epoch": 1, "objective": 9.0, "budget_excess": -0.5})  # stopped early
    search.on_trial_complete("t2", {"epoch": 2, "objective": -0.2, "budget_excess": 0.2})
    trials = {t.number: t for t in search._ot_study.get_trials()}
    by_id = {tid: trials[configs[tid]["optuna_trial"]] for tid in ("t0", "t1", "t2")}
    assert by_id["t0"].state == optuna.trial.TrialState.COMPLETE and by_id["t0"].value == 2.8
    assert by_id["t1"].state == optuna.trial.TrialState.PRUNED
    assert any(v == 0.2 for k, v in by_id["t2"].system_attrs.items() if "constraint" in k)


def test_multi_objective_axis_is_layers_kept_or_measured_latency() -> None:
    assert BudgetSearch(load_spec(None, {"objective": "multi"}), 6, None)._metric == ["val_score", "layers_kept"]
    spec = load_spec(None, {"objective": "multi", "multi_axis": "latency_ms"})
    assert BudgetSearch(spec, 6, None)._metric == ["val_score", "latency_ms"]
    with pytest.raises(ConfigError, match="multi_axis='speed' is not one of"):
        load_spec(None, {"multi_axis": "speed"})
