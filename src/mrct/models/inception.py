"""The standard FID Inception-v3 network, built here so that the official weight file loads strictly.

FID is only comparable between papers when every one uses the same network: the TensorFlow
Inception graph of 2015-12-05 that the original FID code used, converted to PyTorch by
pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``; torch-fidelity ships the same file, same
sha256). torchmetrics' FrechetInceptionDistance would load it through torch-fidelity, and
torch-fidelity requires torchvision, which this project does not depend on; so the network is
written out here. It is torchvision's Inception-v3 (module names kept, so the 566 tensors of the
official file load with ``strict=True``) with the TensorFlow graph's differences that pytorch-fid
reproduces: average pools that do not count padding, a max pool in the last block, batch norm
eps 1e-3, and a 1008-way classifier that FID does not use (it is loaded for the strict check).

Features: the 2048 global-average-pooled activations of the last block, for images resized to
299x299 (bilinear, as pytorch-fid) and scaled to [-1, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mrct.models.inception_file import INCEPTION_FILE, INCEPTION_SHA256, INCEPTION_URL

log = logging.getLogger(__name__)

INPUT_SIZE = 299
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 1e-3 as in TensorFlow), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's average pool ignores the zero padding; torchvision's default counts it.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = x
        for i in range(1, 6):
            dbl = getattr(self, f"branch7x7dbl_{i}")(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg_pool(x)),
        ], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """The last two blocks; the TensorFlow graph max-pools in the second one (``max_pool=True``)."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 as in the FID weight file; ``forward`` returns the 2048 pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, 1008)  # unused by FID; present so the file loads strictly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, 3, 299, 299] in [-1, 1] -> [N, 2048]."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def gray_to_inception_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W] -> float [N, 3, 299, 299] in [-1, 1]: pytorch-fid's resize and scaling.

    pytorch-fid resizes [0, 1] images bilinearly, then maps them to [-1, 1]; bilinear weights
    sum to 1, so mapping first (the package's one uint8 -> network conversion) gives the same.
    """
    from mrct.models.networks import to_network_input

    x = to_network_input(images_uint8)
    return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID network with the weights of ``path`` (strict load), in eval mode."""
    from mrct.models.pretrained import load_state_dict_strict  # the zoo loader's strict load, clear errors

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Inception weight file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt zip, truncated pickle, HTML page: all the same here
        raise ValueError(f"{path}: expected the FID Inception state dict, could not read it ({error})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected the FID Inception state dict, got {type(state).__name__}")
    net = FIDInceptionV3()
    load_state_dict_strict(net, state, path)
    return net.to(device).eval()


def inception_features(net: FIDInceptionV3, images: Sequence | torch.Tensor, batch_size: int,
                       device: str | torch.device = "cpu") -> torch.Tensor:
    """2048-D features [N, 2048] (float64, CPU) of uint8 grayscale images [N, H, W]."""
    images = torch.as_tensor(images)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = gray_to_inception_input(images[start : start + batch_size]).to(device)
            out.append(net(batch).double().cpu())
    return torch.cat(out) if out else torch.empty(0, FEATURE_DIM, dtype=torch.float64)


def fetch_inception_weights(dest: str | Path, url: str = INCEPTION_URL, sha256: str = INCEPTION_SHA256,
                            retries: int = 3, timeout: float = 60) -> Path:
    """Download the official file to ``dest`` (atomic, sha256 pinned; a file placed by hand is
    verified instead) and check that it loads strictly."""
    from mrct.io.download import ChecksumError, DownloadError, download

    dest = Path(dest)
    try:
        download(url, dest, sha256=sha256, retries=retries, timeout=timeout)
    except ChecksumError:
        raise
    except DownloadError as error:
        raise DownloadError(f"{error} Or set fid.download_inception: false to go on without Inception FID "
                            "(the FID table then says it was not computed).") from error
    load_inception(dest)
    log.info("%s: FID Inception weights verified (sha256 %s)", dest, sha256)
    return dest
