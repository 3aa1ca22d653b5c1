"""The configuration: both shipped configs validate; errors name the bad key."""

from __future__ import annotations

import pytest

from mrct.config import ConfigError, deep_merge, load_config, validate_config


@pytest.mark.parametrize("path", ["config.yaml", "config/paper.yaml"])
def test_shipped_configs_validate(path):
    load_config("config.yaml", path)


def test_typo_names_the_key():
    config = load_config("config.yaml")
    config["train"]["n_epoch"] = 3
    with pytest.raises(ConfigError, match=r"config key 'train.n_epoch'"):
        validate_config(config)


def test_bad_value_names_the_key():
    config = deep_merge(load_config("config.yaml"), {"split": {"train_fraction": 1.5}})
    with pytest.raises(ConfigError, match=r"config key 'split.train_fraction'"):
        validate_config(config)


def test_unknown_model_is_rejected():
    config = deep_merge(load_config("config.yaml"), {"models": ["scratch", "horse2cat"]})
    with pytest.raises(ConfigError, match=r"config key 'models.1'"):
        validate_config(config)
