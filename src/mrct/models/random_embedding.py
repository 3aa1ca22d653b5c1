"""A fixed random-weight convolutional network: the feature space of the download-free FID.

FID needs a feature space that none of the compared models defines: the generators are the
contestants, and a ruler trained by one of them (e.g. the scratch generator's encoder, trained on
its own synthetic images) favours it. Without the Inception weights, FID is computed in the
feature space of this network, whose weights are drawn once from a fixed seed and never trained
(random-embedding FID; random convolutional features keep much of what a trained network's
low-level layers see: intensity statistics, edges, texture at several scales).

Architecture (stated here, fixed in code so that every run and every configuration uses the same
network): a grayscale image scaled to [-1, 1] goes through ``len(CHANNELS)`` stages, each a 3x3
convolution (stride 1 in the first stage, 2 after, padding 1, bias 0) and a ReLU; weights are
drawn from N(0, 2 / fan_in) (He) by a ``torch.Generator`` seeded with ``SEED``. The features are,
for **every** stage, the per-channel spatial mean and standard deviation of its output,
concatenated (``2 * sum(CHANNELS)`` = 992 numbers per image): shallow stages carry intensity and
fine texture, deep ones larger structures, so the distance sees the whole network rather than
its last layer. The spatial statistics make the features independent of the image size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Output channels of the stages.
CHANNELS = (16, 32, 64, 128, 256)
#: Seed of the weights: fixed, independent of the config's seed and of the configured models.
SEED = 20250601
FEATURE_DIM = 2 * sum(CHANNELS)
#: Name written into the FID table's note.
DESCRIPTION = f"random conv net, {len(CHANNELS)} stages {list(CHANNELS)}, He-normal weights, seed {SEED}"


class RandomEmbedding(nn.Module):
    """The fixed random network; ``forward`` returns the per-stage channel means and stds."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, seed: int = SEED) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        previous = 1
        for i, width in enumerate(channels):
            conv = nn.Conv2d(previous, width, kernel_size=3, stride=1 if i == 0 else 2, padding=1)
            with torch.no_grad():
                conv.weight.normal_(0.0, float(np.sqrt(2.0 / (previous * 9))), generator=gen)
                conv.bias.zero_()
            conv.requires_grad_(False)
            self.convs.append(conv)
            previous = width
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        statistics = []
        for conv in self.convs:
            x = F.relu(conv(x))
            statistics += [x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)]
        return torch.cat(statistics, dim=1)


def to_unit_range(images: np.ndarray) -> torch.Tensor:
    """Integer grayscale images [N, H, W] (8- or 16-bit) -> float [N, 1, H, W] in [-1, 1]."""
    images = np.asarray(images)
    if images.ndim != 3 or not np.issubdtype(images.dtype, np.integer):
        raise ValueError(f"expected integer grayscale images [N, H, W], got {images.dtype} {images.shape}")
    top = float(np.iinfo(images.dtype).max)
    return torch.from_numpy(images.astype(np.float32) / top * 2.0 - 1.0)[:, None]


def random_embedding_features(net: RandomEmbedding, images: np.ndarray, batch_size: int,
                              device: str | torch.device = "cpu") -> np.ndarray:
    """Features ``[N, FEATURE_DIM]`` (float64) of integer grayscale images."""
    net = net.to(device)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = to_unit_range(images[start : start + batch_size]).to(device)
            out.append(net(batch).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))
