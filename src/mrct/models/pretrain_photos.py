"""A generic pretrained generator made offline from scikit-image's bundled sample photographs.

The demo must run without downloading the zoo, yet exercise the same load / adapt / fine-tune
path as a zoo model. So this module pretrains a ResNet generator (the config's ``network``
width and depth) on the photographs that ship inside the scikit-image wheel (read from the
package folder, never through pooch, so nothing is downloaded).

Task: restoration of degraded grayscale photographs. The input is a grayscale crop passed
through a random monotone tone curve (gamma and contrast), a random blur and additive noise;
the target is the clean grayscale crop. Like MR -> CT synthesis, it asks for a structure-preserving
re-mapping of intensities, while nothing in it is medical. Inputs and targets follow the
network convention of the project (three identical channels in [-1, 1]).

The result is labelled "locally pretrained on scikit-image photos, not a zoo model" in the
file's metadata and in the logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage
import torch
import torch.nn.functional as F
from skimage import color, io

from mrct.io.atomic import atomic_path
from mrct.models.networks import ResnetGenerator, gray_to_rgb, init_weights
from mrct.models.pretrained import save_pretrained_generator

log = logging.getLogger(__name__)

LABEL = "locally pretrained on scikit-image photos, not a zoo model"
#: Natural, non-medical photographs shipped in the scikit-image wheel (microscopy, retina and
#: phantom images are left out on purpose: the point is a generic, non-medical start).
PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "moon.png", "motorcycle_left.png", "page.png", "rocket.jpg",
    "text.png", "hubble_deep_field.jpg",
)


@dataclass(frozen=True)
class PretrainSettings:
    ngf: int
    n_blocks: int
    iterations: int
    crop_size: int
    batch_size: int
    lr: float
    seed: int


def load_photos(names: tuple[str, ...] = PHOTOS) -> list[torch.Tensor]:
    """The photographs as float grayscale tensors [H, W] in [0, 1], read from the wheel."""
    folder = Path(skimage.__file__).parent / "data"
    photos = []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: scikit-image sample photograph missing from the installed wheel")
        image = io.imread(path)
        if image.ndim == 3:
            image = color.rgb2gray(image[..., :3])
        image = np.asarray(image, dtype=np.float64)
        if image.max() > 1.0:
            image = image / 255.0
        photos.append(torch.from_numpy(image).float())
    return photos


def degrade(clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random tone curve, blur and noise applied to clean crops [B, 1, S, S] in [0, 1]."""
    b = clean.shape[0]
    gamma = torch.exp(torch.empty(b, 1, 1, 1).uniform_(-0.7, 0.7, generator=gen))
    contrast = torch.empty(b, 1, 1, 1).uniform_(0.6, 1.2, generator=gen)
    offset = torch.empty(b, 1, 1, 1).uniform_(-0.1, 0.1, generator=gen)
    out = (clean.clamp(0, 1) ** gamma) * contrast + offset
    kernel = torch.tensor([0.25, 0.5, 0.25])
    blurred = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), (kernel[:, None] * kernel[None, :]).view(1, 1, 3, 3))
    mix = torch.rand(b, 1, 1, 1, generator=gen)
    out = mix * blurred + (1 - mix) * out
    noise = torch.randn(out.shape, generator=gen) * torch.empty(b, 1, 1, 1).uniform_(0.0, 0.05, generator=gen)
    return (out + noise).clamp(0, 1)


def sample_crops(photos: list[torch.Tensor], size: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    crops = []
    for _ in range(batch):
        photo = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        h, w = photo.shape
        if min(h, w) < size:
            raise ValueError(f"crop_size {size} exceeds a photograph of {h}x{w}")
        y = int(torch.randint(h - size + 1, (1,), generator=gen))
        x = int(torch.randint(w - size + 1, (1,), generator=gen))
        crop = photo[y : y + size, x : x + size]
        if torch.rand(1, generator=gen) < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.stack(crops).unsqueeze(1)


def _to_net(images01: torch.Tensor) -> torch.Tensor:
    """Photos in [0, 1] -> the network's [-1, 1] range, three identical channels."""
    return gray_to_rgb(images01 * 2 - 1)


def pretrain(s: PretrainSettings) -> tuple[ResnetGenerator, list[float]]:
    """Train a generator on the restoration task; deterministic for a given seed on CPU."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _pretrain(s)
    finally:
        torch.use_deterministic_algorithms(previous)


def _pretrain(s: PretrainSettings) -> tuple[ResnetGenerator, list[float]]:
    gen = torch.Generator().manual_seed(s.seed)
    net = init_weights(ResnetGenerator(ngf=s.ngf, n_blocks=s.n_blocks), generator=gen).train()
    photos = load_photos()
    opt = torch.optim.Adam(net.parameters(), lr=s.lr, betas=(0.5, 0.999))
    losses = []
    log.info("pretraining %s: %d photographs, %s", LABEL, len(photos), s)
    for it in range(s.iterations):
        clean = sample_crops(photos, s.crop_size, s.batch_size, gen)
        loss = F.l1_loss(net(_to_net(degrade(clean, gen))), _to_net(clean))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (it + 1) % max(1, s.iterations // 10) == 0:
            log.info("iteration %d/%d: L1 %.4f", it + 1, s.iterations, np.mean(losses[-10:]))
    return net.eval(), losses


def pretrain_to_file(s: PretrainSettings, output: str | Path) -> list[float]:
    """Pretrain and write a ``mrct-pretrained-1`` file atomically; return the loss curve."""
    net, losses = pretrain(s)
    with atomic_path(output) as tmp:
        save_pretrained_generator(
            tmp, net, source=LABEL,
            extra={"photos": list(PHOTOS), "task": "grayscale photo restoration", "settings": vars(s) | {},
                   "final_l1": float(np.mean(losses[-10:]))},
        )
    log.info("wrote %s (%s)", output, LABEL)
    return losses
