"""One pix2pix optimisation step per direction, as functions that take tensors and return loss dicts.

Isola et al. (2017), as the reference trains its pix2pix models: the generator minimises a
conditional GAN loss plus ``lambda_l1`` (100 in the reference) times the L1 distance to the
registered target; the discriminator sees the source stacked with the real or the generated
target (``cat([x, y])`` on the channels) and its loss is halved to slow it relative to G. The GAN
loss is the reference pix2pix default, "vanilla" (binary cross-entropy on the patch logits), and
there is no image pool. G: MR->CT with D_Y (``d_ct``), F: CT->MR with D_X (``d_mr``); the two
directions share nothing but the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrct.training.pix2pix_build import Pix2PixNets
from mrct.training.pool import ImagePool
from mrct.training.settings import TrainSettings
from mrct.training.step import Optimisers, alternating_step


def vanilla_gan_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Binary cross-entropy of the PatchGAN logits against 1 (real) or 0 (fake)."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def pix2pix_generator_losses(
    nets: Pix2PixNets, real_mr: torch.Tensor, real_ct: torch.Tensor, s: TrainSettings
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Conditional GAN and L1 losses of both generators; also the fakes."""
    fake_ct = nets.g_mr2ct(real_mr)  # G(x)
    fake_mr = nets.g_ct2mr(real_ct)  # F(y)
    losses = {
        "G_mr2ct": vanilla_gan_loss(nets.d_ct(torch.cat([real_mr, fake_ct], 1)), True),  # D_Y(x, G(x)) -> real
        "L1_mr2ct": F.l1_loss(fake_ct, real_ct) * s.lambda_l1,  # |G(x) - y|
        "G_ct2mr": vanilla_gan_loss(nets.d_mr(torch.cat([real_ct, fake_mr], 1)), True),  # D_X(y, F(y)) -> real
        "L1_ct2mr": F.l1_loss(fake_mr, real_mr) * s.lambda_l1,  # |F(y) - x|
    }
    return losses, fake_ct, fake_mr


def conditional_discriminator_loss(disc: nn.Module, source: torch.Tensor, real: torch.Tensor,
                                   fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (BCE(D(source, real), 1) + BCE(D(source, fake), 0)); the fake is detached."""
    return 0.5 * (
        vanilla_gan_loss(disc(torch.cat([source, real], 1)), True)
        + vanilla_gan_loss(disc(torch.cat([source, fake.detach()], 1)), False)
    )


def pix2pix_train_step(
    nets: Pix2PixNets,
    opt: Optimisers,
    pools: tuple[ImagePool, ImagePool],
    real_mr: torch.Tensor,
    real_ct: torch.Tensor,
    s: TrainSettings,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Update both generators (discriminators fixed), then both discriminators; return losses.

    Same signature as the CycleGAN ``train_step`` so the loop can call either; ``pools`` is
    unused (pix2pix has no image pool). Losses come back detached on ``device`` (see
    ``train_step`` for why they are not read here).
    """
    del pools
    return alternating_step(
        nets, opt, s, device,
        lambda: pix2pix_generator_losses(nets, real_mr, real_ct, s),
        lambda fake_ct, fake_mr: {
            "D_ct": conditional_discriminator_loss(nets.d_ct, real_mr, real_ct, fake_ct),
            "D_mr": conditional_discriminator_loss(nets.d_mr, real_ct, real_mr, fake_mr),
        },
    )
