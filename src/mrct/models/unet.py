"""The pix2pix U-Net generator, laid out exactly like the reference zoo so its files load strictly.

pytorch-CycleGAN-and-pix2pix builds ``unet_256`` (the generator of its published pix2pix models)
as nested skip-connection blocks, innermost first: each block is ``down -> submodule -> up`` and
returns ``cat([x, block(x)])``, so the decoder at every level sees the encoder features of that
level. The ``state_dict`` keys follow from the nesting: ``model.model.0.weight`` is the
outermost down-convolution, ``model.model.1.model.1.weight`` the next level's, and so on inward
through index ``.model.3`` (the submodule of a middle block). Batch norm with affine parameters
and running statistics, so the running statistics are part of a published file; convolutions
followed by batch norm have no bias (the outermost up-convolution, followed by tanh, has one).
Dropout (p 0.5) sits at the end of the middle blocks of ``8 * ngf`` channels, as the reference
puts it when dropout is on (pix2pix's default); it has no parameters, so it changes no key.

Levels: level 0 is the outermost (``input_nc`` -> ``ngf``), level ``i`` maps
``ngf * min(2**(i-1), 8)`` to ``ngf * min(2**i, 8)`` channels, the innermost is level
``num_downs - 1``. For ``num_downs >= 5`` this is the reference construction; fewer levels (a
small scratch U-Net on small slices) follow the same rule. An input side must be divisible by
``2**num_downs`` (unet_256: 256 px, a 1x1 bottleneck).

``bottleneck(x)`` returns the innermost features (the output of the innermost down-convolution,
``[N, ngf * 8, H / 2**num_downs, W / 2**num_downs]``), the U-Net counterpart of the ResNet
generator's bottleneck for the latent-space analysis. The skip connections carry the rest.
"""

from __future__ import annotations

import torch
from torch import nn

#: What a trained generator file records to say which class to rebuild (see mrct.models.generators).
UNET_KIND = "unet"


def _level_channels(ngf: int, level: int) -> int:
    return ngf * min(2**level, 8)


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: ``down -> submodule -> up``; all but the outermost return ``cat([x, out])``.

    ``self.model`` holds, in the reference order: outermost ``[conv, sub, relu, convT, tanh]``;
    innermost ``[lrelu, conv, relu, convT, bn]``; middle ``[lrelu, conv, bn, sub, relu, convT, bn]``
    (plus dropout when asked). ``n_down`` is how many of those modules form the down path.
    """

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: UnetSkipConnectionBlock | None = None, outermost: bool = False,
                 innermost: bool = False, use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost, self.innermost = outermost, innermost
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=False)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            down: list[nn.Module] = [downconv]
            up: list[nn.Module] = [nn.ReLU(True), upconv, nn.Tanh()]
            layers = [*down, submodule, *up]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=False)
            down = [nn.LeakyReLU(0.2, True), downconv]
            up = [nn.ReLU(True), upconv, nn.BatchNorm2d(outer_nc)]
            layers = [*down, *up]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=False)
            down = [nn.LeakyReLU(0.2, True), downconv, nn.BatchNorm2d(inner_nc)]
            up = [nn.ReLU(True), upconv, nn.BatchNorm2d(outer_nc)]
            layers = [*down, submodule, *up] + ([nn.Dropout(0.5)] if use_dropout else [])
        if (submodule is None) != innermost:
            raise ValueError("UnetSkipConnectionBlock: exactly the innermost block has no submodule")
        self.n_down = len(down)
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)

    def encoder_modules(self) -> list[nn.Module]:
        """The down-path modules of this level (conv and its norm, with the activation before)."""
        return list(self.model[: self.n_down])

    def submodule(self) -> UnetSkipConnectionBlock | None:
        return None if self.innermost else self.model[self.n_down]


class UnetGenerator(nn.Module):
    """The reference U-Net generator (``unet_256`` is ``num_downs=8, ngf=64``, batch norm, dropout)."""

    kind = UNET_KIND

    def __init__(self, input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64,
                 use_dropout: bool = True) -> None:
        super().__init__()
        if min(input_nc, output_nc, ngf) < 1 or num_downs < 2:
            raise ValueError(
                f"UnetGenerator: expected positive channels and num_downs >= 2, got input_nc={input_nc}, "
                f"output_nc={output_nc}, ngf={ngf}, num_downs={num_downs}"
            )
        self.architecture: dict[str, int | bool] = {
            "input_nc": input_nc,
            "output_nc": output_nc,
            "num_downs": num_downs,
            "ngf": ngf,
            "use_dropout": use_dropout,
        }
        inner = num_downs - 1
        block = UnetSkipConnectionBlock(_level_channels(ngf, inner - 1), _level_channels(ngf, inner), innermost=True)
        for level in range(inner - 1, 0, -1):
            block = UnetSkipConnectionBlock(
                _level_channels(ngf, level - 1),
                _level_channels(ngf, level),
                submodule=block,
                use_dropout=use_dropout and level >= 4,
            )
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True)

    @property
    def min_side(self) -> int:
        """Input sides must be multiples of this (each level halves them)."""
        return 2 ** int(self.architecture["num_downs"])

    def levels(self) -> list[UnetSkipConnectionBlock]:
        """The blocks from the outermost inward."""
        blocks, block = [], self.model
        while block is not None:
            blocks.append(block)
            block = block.submodule()
        return blocks

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """Innermost features: the down paths of every level, outermost first."""
        for block in self.levels():
            for module in block.encoder_modules():
                x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.min_side or x.shape[-2] % self.min_side:
            raise ValueError(
                f"UnetGenerator with {self.architecture['num_downs']} down-samplings needs sides divisible by "
                f"{self.min_side}, got {tuple(x.shape[-2:])}"
            )
        return self.model(x)


def freeze_unet_encoder(net: UnetGenerator) -> None:
    """``freeze_encoder`` for a U-Net: every down-path convolution and batch norm keeps its weights,
    and the batch norms keep their running statistics (momentum 0), so the encoder that inference
    runs (eval mode) is the pretrained one."""
    for block in net.levels():
        for module in block.encoder_modules():
            for parameter in module.parameters():
                parameter.requires_grad_(False)
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.0
