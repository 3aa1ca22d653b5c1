"""One CycleGAN optimisation step, as functions that take tensors and return loss dicts.

Notation of Zhu et al. (2017): X = MR, Y = CT, G: X->Y is ``g_mr2ct``, F: Y->X is ``g_ct2mr``,
D_Y is ``d_ct``, D_X is ``d_mr``. Adversarial losses are least squares (LSGAN), the cycle and
identity losses L1, the identity weight ``lambda_identity * lambda_cycle`` as in the reference.
"""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mrct.training.build import CycleGANNets
from mrct.training.hardware import autocast, autocast_dtype
from mrct.training.pool import ImagePool
from mrct.training.settings import TrainSettings


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Mean squared distance of the PatchGAN scores from 1 (real) or 0 (fake)."""
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction.float(), target.float())


@dataclass
class Optimisers:
    generators: torch.optim.Optimizer
    discriminators: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


def _set_requires_grad(nets: list[nn.Module], flags: dict[int, bool] | bool) -> None:
    """One flag for every parameter, or each parameter's own (by ``id``), e.g. as saved before."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flags if isinstance(flags, bool) else flags[id(p)])


def generator_losses(
    nets: CycleGANNets, real_mr: torch.Tensor, real_ct: torch.Tensor, s: TrainSettings
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Adversarial, cycle, identity (and optional paired) losses of G and F; also the fakes."""
    fake_ct = nets.g_mr2ct(real_mr)  # G(x)
    fake_mr = nets.g_ct2mr(real_ct)  # F(y)
    losses = {
        "G_mr2ct": lsgan_loss(nets.d_ct(fake_ct), True),  # D_Y(G(x)) -> real
        "G_ct2mr": lsgan_loss(nets.d_mr(fake_mr), True),  # D_X(F(y)) -> real
        "cycle_mr": F.l1_loss(nets.g_ct2mr(fake_ct), real_mr) * s.lambda_cycle,  # |F(G(x)) - x|
        "cycle_ct": F.l1_loss(nets.g_mr2ct(fake_mr), real_ct) * s.lambda_cycle,  # |G(F(y)) - y|
    }
    if s.lambda_identity > 0:
        weight = s.lambda_identity * s.lambda_cycle
        losses["idt_ct"] = F.l1_loss(nets.g_mr2ct(real_ct), real_ct) * weight  # |G(y) - y|
        losses["idt_mr"] = F.l1_loss(nets.g_ct2mr(real_mr), real_mr) * weight  # |F(x) - x|
    if s.lambda_paired > 0:
        losses["paired"] = (F.l1_loss(fake_ct, real_ct) + F.l1_loss(fake_mr, real_mr)) * s.lambda_paired
    return losses, fake_ct, fake_mr


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """LSGAN loss of one discriminator, halved as in the reference to slow D relative to G."""
    return 0.5 * (lsgan_loss(disc(real), True) + lsgan_loss(disc(fake.detach()), False))


GeneratorLosses = Callable[[], tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]
DiscriminatorLosses = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def alternating_step(
    nets: CycleGANNets,
    opt: Optimisers,
    s: TrainSettings,
    device: torch.device,
    generator_losses_of: GeneratorLosses,
    discriminator_losses_of: DiscriminatorLosses,
) -> dict[str, torch.Tensor]:
    """One GAN step shared by both objectives: update the generators with the discriminators
    fixed, then the discriminators on the fakes; return every loss.

    ``generator_losses_of()`` returns the generator losses and the fakes (CT, MR);
    ``discriminator_losses_of(fake_ct, fake_mr)`` the discriminator losses. Both run under
    autocast. Frozen discriminator layers stay frozen (their flags are restored, not set).
    The losses come back as detached 0-d tensors on ``device``: reading them (``float``) would
    make the host wait for the GPU every step, so the caller sums them on the device and reads
    the sums once per epoch.
    """
    dtype = autocast_dtype(s.autocast, device)
    discs = nets.discriminators()
    trainable_d = {id(p): p.requires_grad for d in discs for p in d.parameters()}
    _set_requires_grad(discs, False)
    opt.generators.zero_grad(set_to_none=True)
    with autocast(device, dtype):
        g_losses, fake_ct, fake_mr = generator_losses_of()
        loss_g = sum(g_losses.values())
    opt.scaler.scale(loss_g).backward()
    opt.scaler.step(opt.generators)

    _set_requires_grad(discs, trainable_d)
    opt.discriminators.zero_grad(set_to_none=True)
    with autocast(device, dtype):
        d_losses = discriminator_losses_of(fake_ct, fake_mr)
    opt.scaler.scale(sum(d_losses.values())).backward()
    opt.scaler.step(opt.discriminators)
    opt.scaler.update()
    return {k: v.detach() for k, v in {**g_losses, **d_losses}.items()}


def train_step(
    nets: CycleGANNets,
    opt: Optimisers,
    pools: tuple[ImagePool, ImagePool],
    real_mr: torch.Tensor,
    real_ct: torch.Tensor,
    s: TrainSettings,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Update G and F (discriminators fixed), then D_Y and D_X on pooled fakes; return losses."""
    pool_ct, pool_mr = pools
    return alternating_step(
        nets, opt, s, device,
        lambda: generator_losses(nets, real_mr, real_ct, s),
        lambda fake_ct, fake_mr: {
            "D_ct": discriminator_loss(nets.d_ct, real_ct, pool_ct.query(fake_ct)),
            "D_mr": discriminator_loss(nets.d_mr, real_mr, pool_mr.query(fake_mr)),
        },
    )
