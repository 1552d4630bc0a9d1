"""The distillation losses on hand-made logits and embeddings (issue 13)."""

from __future__ import annotations

import pytest
from prunetune.trainables.distill import distill_loss, similarity_distill_loss

from prunetune.config import ConfigError, TrialConfig

torch = pytest.importorskip("torch")

STUDENT = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
TEACHER = torch.tensor([[3.0, 0.0, -2.0], [-1.0, 2.0, 0.5]])
LABELS = torch.tensor([0, 2])


def _kl(student, teacher, t: float) -> torch.Tensor:
    """KL(p_teacher || p_student) at temperature t, averaged over rows: written out by hand."""
    p = torch.softmax(teacher / t, dim=-1)
    return (p * (torch.log(p) - torch.log_softmax(student / t, dim=-1))).sum(dim=-1).mean()


def test_alpha_zero_is_cross_entropy_and_alpha_one_at_t1_is_the_kl() -> None:
    cross_entropy = torch.nn.functional.cross_entropy(STUDENT, LABELS)
    assert torch.allclose(distill_loss(STUDENT, LABELS, TEACHER, 0.0, 4.0), cross_entropy)
    assert torch.allclose(distill_loss(STUDENT, LABELS, TEACHER, 1.0, 1.0), _kl(STUDENT, TEACHER, 1.0))


def test_the_soft_term_is_scaled_by_t_squared_and_mixed_by_alpha() -> None:
    cross_entropy = torch.nn.functional.cross_entropy(STUDENT, LABELS)
    soft = _kl(STUDENT, TEACHER, 4.0)
    mixed = distill_loss(STUDENT, LABELS, TEACHER, 0.25, 4.0)
    assert torch.allclose(mixed, 0.75 * cross_entropy + 0.25 * 16 * soft)
    assert float(distill_loss(TEACHER, LABELS, TEACHER, 1.0, 3.0)) == pytest.approx(0.0, abs=1e-6)  # taught well


def test_distill_settings_are_checked_and_round_trip_as_params() -> None:
    config = TrialConfig().with_overrides({"distill.alpha": "0.5", "distill.temperature": 4, "distill.teacher": "t"})
    assert TrialConfig.from_flat(config.to_flat()) == config
    assert config.to_flat()["distill.alpha"] == "0.5" and config.distill.on
    with pytest.raises(ConfigError, match=r"distill.alpha=1.5: must lie in \[0, 1\]"):
        TrialConfig().with_overrides({"distill.alpha": 1.5})
    with pytest.raises(ConfigError, match="distill.temperature=0"):
        TrialConfig().with_overrides({"distill.temperature": 0})
    # Embeddings are matched without a temperature: a sentence job records none (1), whatever it was given.
    sentence = TrialConfig().with_overrides({"task": "sentence-similarity", "distill.alpha": 0.5})
    assert sentence.distill.on and sentence.distill.temperature == 1.0
    assert TrialConfig.from_flat(sentence.to_flat()) == sentence


def test_the_pull_is_the_squared_gap_between_pair_cosines_mixed_by_alpha() -> None:
    """Each pair's cosine is pulled towards the teacher's cosine of the same pair, not each embedding towards
    the teacher's: a student whose geometry differs from the teacher's but whose similarities match pays
    nothing."""
    x, y = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0], [0.6, 0.8, 0.0]])
    student = (x, y)  # pair cosines 0.0 and 0.6
    teacher = (torch.tensor([[0.0, 0.0, 2.0], [0.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    hard = torch.tensor(0.3)
    assert torch.equal(similarity_distill_loss(hard, student, teacher, 0.0), hard)
    # The teacher's cosines are 1.0 and 1.0: gaps 1.0 and 0.4, mean square (1 + 0.16) / 2 = 0.58.
    assert float(similarity_distill_loss(hard, student, teacher, 1.0)) == pytest.approx(0.58)
    assert float(similarity_distill_loss(hard, student, teacher, 0.25)) == pytest.approx(0.75 * 0.3 + 0.25 * 0.58)
    rotated = (torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0]]))
    assert float(similarity_distill_loss(hard, student, rotated, 1.0)) == pytest.approx(0.0, abs=1e-6)


def test_the_space_samples_alpha_and_temperature_only_for_a_trial_that_distils() -> None:
    import optuna
    from prunetune.search.space import NO_DISTILL, DefineSpace, distill_params, point_key
    from prunetune.search.spec import load_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = DefineSpace(load_spec(None, {"space.distill": True}), 6, 2e-4, None)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: space(trial) or 0.0, n_trials=40)
    seen = {bool(t.params["distill"]) for t in study.trials}
    assert seen == {False, True}
    for t in study.trials:
        distils = t.params["distill"]
        assert ("distill_alpha" in t.params) == distils and ("distill_temperature" in t.params) == distils
        alpha, temperature = distill_params(t.params)
        if distils:
            assert 0 <= alpha <= 1 and 1 <= temperature <= 8
        else:
            assert (alpha, temperature) == NO_DISTILL
    # Without space.distill nothing is sampled; the spec's own alpha names the point.
    plain = DefineSpace(load_spec(None), 6, 2e-4, None)
    undistilled = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    undistilled.optimize(lambda trial: plain(trial) or 0.0, n_trials=5)
    assert not any(name.startswith("distill") for t in undistilled.trials for name in t.params)
    assert distill_params({"strategy": "top"}) == NO_DISTILL and distill_params({}, (0.5, 2.0)) == (0.5, 2.0)
    assert point_key((0, 5), 4e-4, 2, (0.5, 2.0)) != point_key((0, 5), 4e-4, 2)  # a distilled run is another point

    # A sentence task samples alpha alone: its embeddings are matched without a temperature.
    sentence = DefineSpace(load_spec(None, {"space.distill": True, "trial.task": "sentence-similarity"}), 6, 2e-5, None)
    embedded = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    embedded.optimize(lambda trial: sentence(trial) or 0.0, n_trials=20)
    taught = [t.params for t in embedded.trials if t.params["distill"]]
    assert taught and all("distill_temperature" not in params for params in taught)
    assert all(distill_params(params)[1] == 1.0 for params in taught)
