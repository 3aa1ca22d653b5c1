"""The like-for-like control: random_init differs from a zoo model only in where it starts."""

from __future__ import annotations

import torch

from mrct.config import load_config
from mrct.models.networks import ResnetGenerator
from mrct.models.registry import starts_from_file, uses_zoo_networks
from mrct.training.build import build_networks
from mrct.training.loop import training_summary
from mrct.training.settings import settings_from_config

from test_study_config import ROOT


def test_random_init_trains_exactly_what_a_zoo_model_trains_under_adapters(tmp_path):
    config = load_config(ROOT / "config.yaml")
    config["train"] = {**config["train"], "strategy": "adapters", "lr": 0.001}
    zoo_file = tmp_path / "horse2zebra.pth"
    torch.save(ResnetGenerator(ngf=64, n_blocks=9).state_dict(), zoo_file)  # the zoo's file format

    control = settings_from_config(config, "random_init")
    zoo = settings_from_config(config, "horse2zebra")
    scratch = settings_from_config(config, "scratch")
    assert uses_zoo_networks("random_init") and not starts_from_file("random_init")
    assert (control.strategy, control.lr, control.lambda_cycle) == ("adapters", 0.001, 10.0)
    assert (control.ngf, control.n_blocks, control.ndf) == (zoo.ngf, zoo.n_blocks, zoo.ndf) == (64, 9, 64)
    assert (control.n_epochs, control.n_epochs_decay, control.adapter_units) == (
        zoo.n_epochs, zoo.n_epochs_decay, zoo.adapter_units)
    assert scratch.strategy == "full" and (scratch.ngf, scratch.n_blocks) == (16, 3)  # the network section

    rows = [{"seconds": 1.0}]
    control_summary = training_summary(control, build_networks(control, None), rows)
    zoo_summary = training_summary(zoo, build_networks(zoo, zoo_file), rows)
    assert control_summary["trainable_parameters"] == zoo_summary["trainable_parameters"] == 2 * 131584
    assert control_summary["total_parameters"] == zoo_summary["total_parameters"] == 2 * (11378179 + 131584)
    assert control_summary["strategy"] == zoo_summary["strategy"] == "adapters"
