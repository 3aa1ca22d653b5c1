"""The CycleGAN networks, laid out exactly like the reference zoo so its files load strictly.

The ResNet generator and the 70x70 PatchGAN discriminator follow the layer order and the
``state_dict`` keys of junyanz/pytorch-CycleGAN-and-pix2pix (``model.0`` ... ``model.27`` for the
zoo generator, ``model.10.conv_block.1.weight`` for a residual block). Instance norm has no affine
parameters there, so every convolution keeps its bias. Written here, not imported, because the
reference is not a package; the parameter count of the zoo configuration (11,378,179) is checked
in tests/test_networks.py.

Two additions that the zoo files must not see:

* ``adapters``: a residual pair of 1x1 convolutions (per-pixel fully connected layers) inserted
  after the residual blocks. They live under the ``adapter.`` prefix, outside ``model.``, so a
  zoo state dict still loads strictly into ``generator.model``. The second layer starts at zero,
  so an adapted network computes exactly what the pretrained one computed until training moves it.
* ``bottleneck(x)``: the features the decoder sees (after the residual blocks, or after the
  adapters when present), used by the latent-space analysis.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

#: Number of modules before the residual blocks in ``ResnetGenerator.model``: reflection pad,
#: 7x7 conv, norm, ReLU, then two (stride-2 conv, norm, ReLU) triples.
_N_STEM_AND_DOWN = 10
#: The stem and the two down-sampling convolutions: what ``freeze_encoder`` freezes.
ENCODER_LAYERS = range(_N_STEM_AND_DOWN)


def _norm(channels: int) -> nn.InstanceNorm2d:
    # The zoo's CycleGAN generators and discriminators use instance norm without affine
    # parameters or running statistics.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Residual block: x + [pad, conv3x3, norm, ReLU, pad, conv3x3, norm](x)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            _norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class BottleneckAdapter(nn.Module):
    """Residual per-pixel MLP at the bottleneck: x + W2 relu(W1 x), W2 initialised to zero.

    The zero-initialised output layer makes the adapted generator start as the pretrained one
    (the study's adapters are "two new fully connected layers of 256 units"; at a feature map
    a per-pixel fully connected layer is a 1x1 convolution).
    """

    def __init__(self, channels: int, units: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, units, kernel_size=1)
        self.act = nn.ReLU(True)
        self.fc2 = nn.Conv2d(units, channels, kernel_size=1)
        nn.init.normal_(self.fc1.weight, 0.0, 0.02)
        nn.init.zeros_(self.fc1.bias)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(x)))


class ResnetGenerator(nn.Module):
    """The zoo's ResNet generator (two down-samplings, ``n_blocks`` residual blocks, two up)."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        adapter_units: int = 0,
    ) -> None:
        super().__init__()
        if min(input_nc, output_nc, ngf) < 1 or n_blocks < 0 or adapter_units < 0:
            raise ValueError(
                f"ResnetGenerator: expected positive channels and n_blocks >= 0, got "
                f"input_nc={input_nc}, output_nc={output_nc}, ngf={ngf}, n_blocks={n_blocks}, "
                f"adapter_units={adapter_units}"
            )
        self.architecture: dict[str, int] = {
            "input_nc": input_nc,
            "output_nc": output_nc,
            "ngf": ngf,
            "n_blocks": n_blocks,
            "adapter_units": adapter_units,
        }
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # down-sampling
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                _norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):  # up-sampling
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult,
                    ngf * mult // 2,
                    kernel_size=3,
                    stride=2,
                    padding=1,
                    output_padding=1,
                    bias=True,
                ),
                _norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self._split = _N_STEM_AND_DOWN + n_blocks
        self.adapter: BottleneckAdapter | None = None
        if adapter_units:
            self.add_adapters(adapter_units)

    def add_adapters(self, units: int = 256) -> BottleneckAdapter:
        """Insert the bottleneck adapter (after the residual blocks) and return it."""
        if self.adapter is not None:
            raise ValueError("ResnetGenerator: adapters are already present")
        self.adapter = BottleneckAdapter(self.architecture["ngf"] * 4, units)
        self.architecture["adapter_units"] = units
        first = next(self.model.parameters())
        self.adapter.to(device=first.device, dtype=first.dtype)
        return self.adapter

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """Features after the residual blocks (and adapters): shape [N, 4*ngf, H/4, W/4]."""
        features = self.model[: self._split](x)
        if self.adapter is not None:
            features = self.adapter(features)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model[self._split :](self.bottleneck(x))


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator; with ``n_layers=3`` each output sees a 70x70 input patch.

    The conditional discriminator of pix2pix is the same network on (source, target) stacked
    along the channels (``input_nc = 6``) with ``norm="batch"``.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        if min(input_nc, ndf, n_layers) < 1 or norm not in ("instance", "batch"):
            raise ValueError(
                f"NLayerDiscriminator: expected positive sizes and norm instance or batch, got "
                f"input_nc={input_nc}, ndf={ndf}, n_layers={n_layers}, norm={norm!r}"
            )
        # CycleGAN: instance norm, convolutions with bias. pix2pix: batch norm (affine), so the
        # convolutions before it have no bias, as in the reference.
        batch = norm == "batch"

        def _d_norm(channels: int) -> nn.Module:
            return nn.BatchNorm2d(channels) if batch else _norm(channels)

        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=2, padding=1, bias=not batch),
                _d_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=not batch),
            _d_norm(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(net: nn.Module, gain: float = 0.02, generator: torch.Generator | None = None) -> nn.Module:
    """The reference's "normal" initialisation: conv weights ~ N(0, gain), biases 0 (batch-norm
    scales ~ N(1, gain)).

    Adapters keep their own initialisation (zero output layer) so that they start as identity.
    """
    for name, module in net.named_modules():
        if name.startswith("adapter"):
            continue
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                module.weight.normal_(0.0, gain, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
        elif isinstance(module, nn.BatchNorm2d):  # pix2pix networks: scale ~ N(1, gain), shift 0
            with torch.no_grad():
                module.weight.normal_(1.0, gain, generator=generator)
                module.bias.zero_()
    return net


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


#: Full scale of the stored slice types a network reads (``mrct.io.png``): level 0 is -1, this is +1.
_FULL_SCALE = {torch.uint8: 255.0, torch.uint16: 65535.0}


def gray_to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 [N, H, W] (or [N, 1, H, W]) -> float [N, 1, H, W] in [-1, 1], the zoo's range.

    The dtype's full scale maps to +1, so 8-bit and 16-bit slices of one window give the same input
    (to their quantisation): the zoo's 8-bit photographs and the pipeline's 16-bit slices alike.
    """
    if images.dtype not in _FULL_SCALE:
        raise ValueError(f"expected uint8 or uint16 images, got {images.dtype}")
    x = images.float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected grayscale images [N, H, W] or [N, 1, H, W], got {tuple(x.shape)}")
    return x / (_FULL_SCALE[images.dtype] / 2.0) - 1.0


def gray_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> [N, 3, H, W] with identical channels: zoo generators take RGB."""
    return x.expand(-1, 3, -1, -1).contiguous()


def to_network_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 [N, H, W] (or [N, 1, H, W]) -> float [N, 3, H, W] in [-1, 1], channels identical."""
    return gray_to_rgb(gray_to_unit(images))


def from_network_output(output: torch.Tensor) -> torch.Tensor:
    """float [N, C, H, W] -> float32 [N, H, W] in [-1, 1]: channels averaged, clipped, not rounded.

    Kept in float so a volume goes to physical units with no quantisation step
    (``mrct.slices.geometry.from_unit``); ``to_levels(x, -1, 1)`` stores it as a slice.
    """
    return output.float().mean(dim=1).clamp(-1.0, 1.0)
