from __future__ import annotations

from pathlib import Path

import pytest
from prunetune.search.searcher import BudgetSearch
from prunetune.search.space import DefineSpace, budget_excess, check_space, objective, on_grid
from prunetune.search.spec import SearchSpec, load_spec, reference_key
from prunetune.trainables.strategies import StrategyError, kept_layers

from prunetune.config import ConfigError

pytestmark = pytest.mark.upstream  # relies on how Ray, Optuna or MLflow behave: scripts/test --latest


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


def test_budget_search_decides_kept_layers_and_tells_optuna_the_truth(tmp_path) -> None:
    import optuna

    spec = load_spec(None, {"space.strategies": "[top, middle, window]", "space.epochs": "[2, 2]"})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = BudgetSearch(spec, 6, None, anchor_lr=2e-4, storage=optuna.storages.RDBStorage(storage), study_name="s")
    configs = {f"t{i}": search.suggest(f"t{i}") for i in range(6)}
    for config in configs.values():
        trial = config["trial"]
        drop = trial["drop"]
        params = {"count": drop["count"]} | (
            {"start_fraction": drop["start_fraction"]} if drop["strategy"] == "window" else {}
        )
        assert tuple(trial["kept_layers"]) == kept_layers(drop["strategy"], 6, params)
        assert trial["training"]["epochs"] == 2
        assert 1e-4 <= trial["training"]["learning_rate"] <= 1.6e-3  # 0.5x to 8x the reference's 2e-4
    full = {"epoch": 2, "objective": 2.8, "budget_excess": -0.01}
    search.on_trial_complete("t0", full)
    search.on_trial_complete("t1", {"epoch": 1, "objective": 9.0, "budget_excess": 0.04})  # stopped early
    search.on_trial_complete("t2", {"epoch": 2, "objective": -0.2, "budget_excess": 0.2})
    # Read back from the Optuna storage, as optuna-dashboard and a resumed search see it.
    trials = {t.number: t for t in optuna.load_study(study_name="s", storage=storage).get_trials()}
    by_id = {tid: trials[configs[tid]["optuna_trial"]] for tid in ("t0", "t1", "t2")}
    assert by_id["t0"].state == optuna.trial.TrialState.COMPLETE and by_id["t0"].value == 2.8
    assert by_id["t0"].constraints == {"acc_drop_excess": -0.01}
    # A trial ASHA stopped early is PRUNED, and carries the budget from its last result: over it here.
    assert by_id["t1"].state == optuna.trial.TrialState.PRUNED
    assert by_id["t1"].constraints == {"acc_drop_excess": 0.04}
    assert by_id["t2"].constraints == {"acc_drop_excess": 0.2}


def test_no_point_is_trained_twice_and_an_exhausted_space_ends_the_search() -> None:
    import optuna
    from ray.tune.search import Searcher

    # One strategy, one count, one learning rate, one epoch count: two distinct points (top 1, top 2).
    spec = load_spec(
        None,
        {
            "space.strategies": "[top]",
            "space.min_count": 1,
            "space.max_count": 2,
            "space.learning_rate_scale": "[1, 1.2]",
            "space.epochs": "[2, 2]",
        },
    )
    search = BudgetSearch(spec, 6, None, anchor_lr=1e-4)
    first, second = search.suggest("a"), search.suggest("b")
    points = {tuple(c["trial"]["kept_layers"]) for c in (first, second)}
    assert points == {(0, 1, 2, 3, 4), (0, 1, 2, 3)}
    assert {c["trial"]["training"]["learning_rate"] for c in (first, second)} == {1e-4}
    search.on_trial_complete("a", {"epoch": 2, "objective": 1.6, "budget_excess": -0.01})
    assert search.suggest("c") == Searcher.FINISHED  # nothing new left: no trial spent on a repeat
    repeats = [t for t in search.study.get_trials() if "repeat_of" in t.user_attrs]
    assert repeats, "a repeat is told to Optuna, not trained"
    # Once a's outcome is known, its repeats are told that outcome; b's outcome is not known yet: FAIL.
    of_a = [t for t in repeats if t.user_attrs["repeat_of"] == first["optuna_trial"]]
    told = [t for t in of_a if t.state == optuna.trial.TrialState.COMPLETE]
    assert told and all(t.value == 1.6 and t.constraints == {"acc_drop_excess": -0.01} for t in told)
    of_b = [t for t in repeats if t.user_attrs["repeat_of"] == second["optuna_trial"]]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in of_b)


def test_a_count_beyond_what_a_strategy_can_drop_realises_its_deepest_drop_not_a_failure() -> None:
    from prunetune.search.space import strategy_params
    from ray.tune.search import Searcher

    # alternate-even drops at most 3 of 6 layers; the static count range goes to 5.
    assert strategy_params({"strategy": "alternate-even", "count": 5}, 6) == {"count": 3}
    assert strategy_params({"strategy": "window", "count": 2, "start_fraction": 0.5, "threshold": 0.9}, 6) == {
        "count": 2,
        "start_fraction": 0.5,
    }
    spec = load_spec(
        None,
        {"space.strategies": "[alternate-even]", "space.learning_rate_scale": "[1, 1.2]", "space.epochs": "[2, 2]"},
    )
    search = BudgetSearch(spec, 6, None, anchor_lr=1e-4)
    suggested = []
    for i in range(4):  # three distinct drops exist (1, 2, 3 layers); then the space is exhausted, no error
        config = search.suggest(f"t{i}")
        if config == Searcher.FINISHED:
            break
        suggested.append(tuple(config["trial"]["kept_layers"]))
        search.on_trial_complete(f"t{i}", {"epoch": 2, "objective": 1.0, "budget_excess": -0.01})
    assert sorted(suggested) == [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 2, 4)]
    assert search.suggest("t9") == Searcher.FINISHED


def test_learning_rate_follows_the_tuned_reference_on_a_half_octave_grid() -> None:
    import optuna

    assert on_grid(3.1e-4, 2e-4, 1e-4, 1.6e-3) == pytest.approx(2.82843e-4, rel=1e-5)
    assert on_grid(5e-5, 2e-4, 1e-4, 1.6e-3) == pytest.approx(1e-4)  # clipped into the range
    assert on_grid(9e-3, 2e-4, 1e-4, 1.6e-3) == pytest.approx(1.6e-3)
    spec = load_spec(None, {"space.strategies": "[top]"})
    space = DefineSpace(spec, 6, 2e-4, None)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rates = set()
    for _ in range(60):
        trial = study.ask()
        space(trial)
        rates.add(space.learning_rate(trial.params))
        study.tell(trial, 0.0)
    assert min(rates) >= 1e-4 - 1e-12 and max(rates) <= 1.6e-3 + 1e-12
    assert len(rates) <= 9  # 0.5x .. 8x on half-octave steps: 9 learning rates at most
    absolute = DefineSpace(load_spec(None, {"space.learning_rate": "[1e-4, 4e-4]"}), 6, 2e-4, None)
    assert absolute.lr_name == "learning_rate"
    assert absolute.learning_rate({"learning_rate": 3.9e-4}) == pytest.approx(4e-4)


def test_contribution_thresholds_span_the_layer_scores_so_every_one_is_realisable() -> None:
    import random

    import optuna
    from prunetune.search.space import strategy_params
    from prunetune.trainables.strategies import threshold_range

    from prunetune.records import LayerScores

    rng = random.Random(3)
    n = 8
    cosine = [[1.0] * (n + 1) for _ in range(n + 1)]
    for layer in range(n):
        cosine[layer][layer + 1] = rng.uniform(0.5, 0.99)
    cosine[2][3] = cosine[5][6]  # a tie
    scores = LayerScores("m", n, 10, 16, tuple(map(tuple, cosine)), tuple(tuple([0.0] * (n + 1)) for _ in range(n + 1)))
    spec = load_spec(None, {"space.strategies": "[contribution]", "space.min_count": 2, "space.max_count": 5})
    space = DefineSpace(spec, n, 1e-4, scores)
    assert space.thresholds == threshold_range(scores, 2, 5)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1))
    counts = set()
    for _ in range(200):
        trial = study.ask()
        space(trial)
        assert set(trial.params) >= {"threshold"} and "count" not in trial.params
        dropped = n - len(kept_layers("contribution", n, strategy_params(trial.params, n), scores))
        assert 2 <= dropped <= 5
        counts.add(dropped)
        study.tell(trial, float(dropped))
    assert counts == {2, 3, 4, 5}
    with pytest.raises(StrategyError, match="tie"):
        flat = tuple(tuple([0.9] * (n + 1)) for _ in range(n + 1))
        threshold_range(LayerScores("m", n, 10, 16, flat, flat), 2, 5)


def test_seeds_reference_sweep_and_known_reference_are_validated() -> None:
    from prunetune.search.spec import decision_seeds, reference_epochs

    spec = load_spec(None, {"trial.training.seed": 42, "seeds": 3, "space.epochs": "[1, 3]"})
    assert decision_seeds(spec) == [43, 44, 45]  # never the search's own seed
    assert reference_epochs(spec) == (3,)
    with pytest.raises(ConfigError, match="seeds=0"):
        load_spec(None, {"seeds": 0})
    with pytest.raises(ConfigError, match="reference.learning_rates"):
        load_spec(None, {"reference.learning_rates": "[]"})
    with pytest.raises(ConfigError, match="budget.reference_score=-1"):
        load_spec(None, {"budget.reference_score": -1})


def test_multi_objective_axis_is_layers_kept_or_measured_latency() -> None:
    assert BudgetSearch(load_spec(None, {"objective": "multi"}), 6, None).objectives == ["val_score", "layers_kept"]
    spec = load_spec(None, {"objective": "multi", "multi_axis": "latency_ms"})
    assert BudgetSearch(spec, 6, None).objectives == ["val_score", "latency_ms"]
    with pytest.raises(ConfigError, match="multi_axis='speed' is not one of"):
        load_spec(None, {"multi_axis": "speed"})


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "it's", "", "x" * 200])
def test_a_search_name_that_could_escape_its_folder_or_break_a_filter_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"name=.*use letters, digits"):
        load_spec(None, {"name": name})


def test_every_example_search_spec_name_is_accepted() -> None:
    specs = [
        p for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.yaml") if "\ntrial:" in p.read_text()
    ]
    assert len(specs) >= 4
    for path in specs:
        assert load_spec(str(path)).name


def test_a_trial_no_node_can_hold_is_refused_unless_the_cluster_scales() -> None:
    from prunetune.search.shared import check_resources

    nodes = [{"CPU": 2.0, "memory": 1e9}, {"CPU": 16.0, "GPU": 1.0}]
    check_resources(load_spec(None, {"resources.gpus_per_trial": 0.5}), nodes)  # the GPU node holds two
    check_resources(load_spec(None, {"resources.cpus_per_trial": 16}), nodes)
    with pytest.raises(ConfigError, match=r"asks for 1 CPU, 0.5 GPU, and no node .* \(the largest: 2 CPU, 0 GPU\)"):
        check_resources(load_spec(None, {"resources.gpus_per_trial": 0.5}), nodes[:1])
    with pytest.raises(ConfigError, match="asks for 17 CPU"):
        check_resources(load_spec(None, {"resources.cpus_per_trial": 17}), nodes)
    check_resources(load_spec(None, {"resources.gpus_per_trial": 2, "resources.autoscaling": True}), nodes)


def test_unset_num_trials_is_two_per_depth_the_space_may_drop() -> None:
    from prunetune.search.spec import trials_for, with_trials

    spec = load_spec(None, {})
    assert spec.num_trials is None  # resolved per model: the warm start's trial per depth, and one for the sampler
    assert (trials_for(spec, 6), trials_for(spec, 12)) == (10, 22)
    assert trials_for(spec.with_overrides({"space.min_count": 2, "space.max_count": 4}), 12) == 6
    assert trials_for(spec.with_overrides({"num_trials": 3}), 12) == 3  # a count the user set stands
    assert (with_trials(spec, 6).min_trials, with_trials(spec, 6).trials) == (10, 25)  # then on while open, to 25
    assert (with_trials(spec.with_overrides({"num_trials": 7}), 6).min_trials) == 7  # a set count is fixed
    with pytest.raises(ConfigError, match="min_trials=9: must be at least 1 and at most num_trials=8"):
        load_spec(None, {"num_trials": 8, "min_trials": 9})
    # Without the warm start (switched off, or no strategy to express its blocks) the sampler finds every depth alone
    assert trials_for(spec.with_overrides({"space.warm_start": False}), 6) == 25
    assert trials_for(spec.with_overrides({"space.strategies": "[top, bottom]"}), 6) == 25
    assert trials_for(spec.with_overrides({"space.strategies": "[top, angular-block]"}), 6) == 10
    with pytest.raises(ValueError, match="resolved by the search"):
        _ = spec.trials
    with pytest.raises(ConfigError, match="first_seeds=1: at least 2"):
        load_spec(None, {"first_seeds": "1"})
