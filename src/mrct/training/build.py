"""The four CycleGAN networks of one run, their starting weights and the transfer strategy.

Naming follows the paper: G (``mr2ct``) maps MR to CT, F (``ct2mr``) maps CT to MR, D_Y (``d_ct``)
judges CT images, D_X (``d_mr``) judges MR images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mrct.models.networks import ENCODER_LAYERS, NLayerDiscriminator, ResnetGenerator, count_parameters, init_weights
from mrct.models.pretrained import load_pretrained_generator
from mrct.training.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class CycleGANNets:
    g_mr2ct: ResnetGenerator
    g_ct2mr: ResnetGenerator
    d_ct: NLayerDiscriminator
    d_mr: NLayerDiscriminator

    def items(self) -> list[tuple[str, nn.Module]]:
        return [("g_mr2ct", self.g_mr2ct), ("g_ct2mr", self.g_ct2mr), ("d_ct", self.d_ct), ("d_mr", self.d_mr)]

    def generators(self) -> list[ResnetGenerator]:
        return [self.g_mr2ct, self.g_ct2mr]

    def discriminators(self) -> list[NLayerDiscriminator]:
        return [self.d_ct, self.d_mr]


def apply_strategy(net: ResnetGenerator, strategy: str, adapter_units: int) -> None:
    """Freeze what the strategy freezes; for ``adapters`` insert the bottleneck adapter first.

    full: every layer trains. freeze_encoder: the stem and the two down-sampling convolutions
    are frozen. adapters: every pretrained layer is frozen; only the new adapter trains.
    """
    if strategy == "full":
        return
    if strategy == "freeze_encoder":
        frozen = [net.model[i] for i in ENCODER_LAYERS]
    elif strategy == "adapters":
        net.add_adapters(adapter_units)
        frozen = [net.model]
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    for module in frozen:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def build_networks(settings: TrainSettings, pretrained: str | Path | None) -> CycleGANNets:
    """Both generators from ``pretrained`` (or the reference random init when None), random Ds.

    Initialisation draws from a generator seeded by ``settings.seed``, so the start is the same
    on every run and independent of anything that touched the global random state before.
    """
    gen = torch.Generator().manual_seed(settings.seed)
    arch = settings.generator_architecture
    generators = []
    for direction in ("mr2ct", "ct2mr"):
        if pretrained is None:
            net = init_weights(ResnetGenerator(**arch), generator=gen)
        else:
            net = load_pretrained_generator(pretrained, arch)
        apply_strategy(net, settings.strategy, settings.adapter_units)
        if net.adapter is not None:
            nn.init.normal_(net.adapter.fc1.weight, 0.0, 0.02, generator=gen)
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        log.info(
            "G_%s: %s, %d parameters, %d trainable (strategy %s)",
            direction,
            "random init" if pretrained is None else f"pretrained from {pretrained}",
            count_parameters(net),
            trainable,
            settings.strategy,
        )
        generators.append(net)
    d_ct, d_mr = (init_weights(NLayerDiscriminator(3, settings.ndf, settings.d_layers), generator=gen) for _ in range(2))
    return CycleGANNets(generators[0], generators[1], d_ct, d_mr)
