"""The four pix2pix networks of one run: a U-Net generator and a conditional PatchGAN per direction.

The two directions are two independent pix2pix models trained side by side on the same paired
batches: G (``g_mr2ct``) with D_Y (``d_ct``), which judges (MR, CT) pairs, and F (``g_ct2mr``)
with D_X (``d_mr``), which judges (CT, MR) pairs. The attribute names are those of the CycleGAN
networks, so the loop, the optimisers, the checkpoint and the generator files treat both
families alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from mrct.models.networks import NLayerDiscriminator, count_parameters, init_weights
from mrct.models.pretrained import load_pretrained_generator
from mrct.models.unet import UnetGenerator, freeze_unet_encoder
from mrct.training.build import CycleGANNets
from mrct.training.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class Pix2PixNets(CycleGANNets):
    """``g_mr2ct``/``g_ct2mr`` are U-Nets; ``d_ct``/``d_mr`` see 6 channels: (source, target)."""


def apply_unet_strategy(net: UnetGenerator, strategy: str) -> None:
    """full: every layer trains; freeze_encoder: the down path of every level stays fixed."""
    if strategy == "freeze_encoder":
        freeze_unet_encoder(net)
    elif strategy != "full":
        raise ValueError(f"train.strategy: {strategy!r} is not defined for the pix2pix U-Net (full or freeze_encoder)")


def build_pix2pix_networks(settings: TrainSettings, pretrained: str | Path | None) -> Pix2PixNets:
    """Both U-Nets from ``pretrained`` (or the reference random init when None), random Ds.

    Initialisation draws from a generator seeded by ``settings.seed``, as for CycleGAN.
    """
    gen = torch.Generator().manual_seed(settings.seed)
    arch = settings.generator_architecture
    generators = []
    for direction in ("mr2ct", "ct2mr"):
        if pretrained is None:
            net = init_weights(UnetGenerator(**arch), generator=gen)
        else:
            net = load_pretrained_generator(pretrained, arch, settings.generator_kind)
        apply_unet_strategy(net, settings.strategy)
        trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
        log.info("G_%s: U-Net, %s, %d parameters, %d trainable (strategy %s)", direction,
                 "random init" if pretrained is None else f"pretrained from {pretrained}", count_parameters(net),
                 trainable, settings.strategy)
        generators.append(net)
    d_ct, d_mr = (
        init_weights(NLayerDiscriminator(6, settings.ndf, settings.d_layers, norm="batch"), generator=gen)
        for _ in range(2)
    )
    return Pix2PixNets(generators[0], generators[1], d_ct, d_mr)
