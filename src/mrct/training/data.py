"""Training data: the train split's MR and CT PNGs in memory, and seeded per-epoch batches.

The slices are small (a study has a few hundred 256x256 PNGs), so they are read once into
tensors of their stored type (uint16 levels; uint8 for 8-bit slices), converted to [-1, 1] per
batch by ``gray_to_unit``; this removes worker processes and their random states from the picture.
Each epoch draws its order and augmentation from a generator seeded with (seed, epoch), so an
epoch is a pure function of the seed and its index: a resumed run sees exactly the batches an
uninterrupted run would have seen, with no sampler state to carry around.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mrct.io.png import read_gray_png
from mrct.models.networks import gray_to_rgb, gray_to_unit
from mrct.slices.manifest import split_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SliceSet:
    """Train-split slices: ``mr`` and ``ct`` are stored levels (uint16 or uint8) [N, S, S]; row i of each is a pair."""

    mr: torch.Tensor
    ct: torch.Tensor
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return int(self.mr.shape[-1])


def load_split(manifest: pd.DataFrame, split: str = "train", root: str | Path = ".") -> SliceSet:
    """Read the MR and CT PNGs of one split of the manifest (paths relative to ``root``)."""
    rows = split_rows(manifest, split)
    root = Path(root)
    mr = [read_gray_png(root / p) for p in rows["mr_png"]]
    ct = [read_gray_png(root / p) for p in rows["ct_png"]]
    shapes = {a.shape for a in mr + ct}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or len(set(next(iter(shapes)))) != 1:
        raise ValueError(f"manifest: expected square slices of one size in split {split!r}, got shapes {sorted(shapes)}")
    for modality, images in (("MR", mr), ("CT", ct)):
        depths = sorted({str(a.dtype) for a in images})
        if len(depths) != 1:  # np.stack would silently read 8-bit levels on the 16-bit scale
            raise ValueError(f"manifest: expected one bit depth for the {modality} slices of split {split!r}, got {depths}")
    names = tuple(Path(p).name for p in rows["ct_png"])
    log.info("loaded %d %s slices of %s px", len(names), split, next(iter(shapes)))
    return SliceSet(torch.from_numpy(np.stack(mr)), torch.from_numpy(np.stack(ct)), names)


def _jitter(images: torch.Tensor, load_size: int, crops: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Resize to ``load_size``, crop back to the original size at ``crops`` offsets, flip."""
    size = images.shape[-1]
    if load_size != size:
        images = F.interpolate(images, size=(load_size, load_size), mode="bilinear", align_corners=False)
    out = torch.stack([images[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(crops.tolist())])
    return torch.where(flips.view(-1, 1, 1, 1), out.flip(-1), out)


def epoch_batches(
    data: SliceSet,
    epoch: int,
    seed: int,
    batch_size: int,
    paired: bool,
    load_factor: float,
    flip: bool,
    skip: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (mr, ct) float batches [B, 3, S, S] in [-1, 1] for one epoch, from batch ``skip`` on.

    Unpaired (default): MR and CT orders and augmentations are drawn independently, as in the
    reference's unaligned dataset. Paired: one order and one crop/flip per pair, so a paired L1
    term compares corresponding anatomy. The whole epoch's draws come first, so batch ``skip``
    of a resumed epoch is the batch an uninterrupted epoch would have had there.
    """
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    n, size = len(data.names), data.size
    load_size = max(size, round(size * load_factor))

    def draw() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        order = torch.randperm(n, generator=gen)
        crops = torch.randint(0, load_size - size + 1, (n, 2), generator=gen)
        flips = torch.rand(n, generator=gen) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
        return order, crops, flips

    mr_order, mr_crops, mr_flips = draw()
    ct_order, ct_crops, ct_flips = (mr_order, mr_crops, mr_flips) if paired else draw()
    for start in range(skip * batch_size, n, batch_size):
        sl = slice(start, start + batch_size)
        mr = _jitter(gray_to_unit(data.mr[mr_order[sl]]), load_size, mr_crops[sl], mr_flips[sl])
        ct = _jitter(gray_to_unit(data.ct[ct_order[sl]]), load_size, ct_crops[sl], ct_flips[sl])
        yield gray_to_rgb(mr), gray_to_rgb(ct)


def n_batches(data: SliceSet, batch_size: int) -> int:
    return -(-len(data.names) // batch_size)
