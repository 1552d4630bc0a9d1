from __future__ import annotations

import pytest
from prunetune.trainables.job_file import load_trial_config

from prunetune.config import ConfigError, TrialConfig, parse_overrides


def test_flat_params_round_trip_exactly() -> None:
    config = TrialConfig().with_overrides(
        {
            "drop.strategy": "explicit",
            "drop.layers": "[1, 3]",
            "kept_layers": [0, 2, 4, 5],
            "training.learning_rate": "3e-5",
            "sentence.nli_data.source": "glue:rte",
            "data.max_train_rows": 100,
        }
    )
    flat = config.to_flat()
    assert all(isinstance(v, str) for v in flat.values())
    assert flat["training.learning_rate"] == "3e-05"
    assert TrialConfig.from_flat(flat) == config
    assert config.kept_layers == (0, 2, 4, 5) and config.drop.layers == (1, 3)
    assert config.sentence.nli_data is not None and config.sentence.nli_data.source == "glue:rte"


def test_strings_are_coerced_like_yaml_and_cli_values() -> None:
    config = TrialConfig().with_overrides(
        {"training.epochs": "3", "training.learning_rate": "1e-4", "scratch_model": "none", "drop.count": "2"}
    )
    assert config.training.epochs == 3 and config.training.learning_rate == 1e-4
    assert config.scratch_model is None and config.drop.count == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"training.epoch": "3"}, "unknown key 'training.epoch'; valid keys here: learning_rate, epochs"),
        ({"modle": "x"}, "unknown key 'modle'"),
        ({"training.epochs": "three"}, "training.epochs must be an integer"),
        ({"training.epochs": "2.5"}, "training.epochs must be an integer"),
        ({"training.learning_rate": "-1"}, "training.learning_rate=-1.0 is not allowed"),
        ({"task": "regression"}, "task='regression' is not one of"),
        ({"data.on_bad_row": "ignore"}, "data.on_bad_row='ignore' is not one of"),
        ({"kept_layers": "[1, 2"}, "cannot read"),
    ],
)
def test_bad_values_name_the_key_and_the_reason(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrialConfig().with_overrides(overrides)


def test_yaml_file_and_overrides(tmp_path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("model: some/model\ndata:\n  source: stsb:en\ntask: sentence-similarity\ntraining:\n  epochs: 4\n")
    config = load_trial_config(str(path), parse_overrides(["training.epochs=1", "drop.strategy=top", "drop.count=2"]))
    assert (config.model, config.task, config.training.epochs, config.drop.params()) == (
        "some/model",
        "sentence-similarity",
        1,
        {"count": 2},
    )
    with pytest.raises(ConfigError, match="does not exist"):
        load_trial_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["training.epochs"])
    (tmp_path / "bad.yaml").write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_trial_config(str(tmp_path / "bad.yaml"))
