"""Trained generator files (format ``mrct-generator-1``): the writer and the reader side by side.

Training writes one file per direction (``G_mr2ct.pth``, ``G_ct2mr.pth``); prediction, volume
translation and the latent space read them. Besides the weights, a file records how to rebuild
the network (its class under ``network``, see mrct.models.generators; architecture, strategy)
and what it is (model, where it started, direction, the slice size it was trained on), so a file
alone is enough to use or audit it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mrct.io.atomic import atomic_path
from mrct.models.generators import RESNET_KIND, build_generator, generator_kind

#: Format tag of a trained generator file.
GENERATOR_FORMAT = "mrct-generator-1"


def save_trained_generator(path: str | Path, net: nn.Module, *, model: str, label: str, direction: str,
                           strategy: str, image_size: int) -> None:
    """Write ``net`` (weights on the CPU) with what it is, atomically."""
    payload = {
        "image_size": image_size,
        "format": GENERATOR_FORMAT,
        "model": model,
        "label": label,
        "direction": direction,
        "network": generator_kind(net),
        "architecture": dict(net.architecture),
        "strategy": strategy,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_trained_generator(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a generator file written by ``save_trained_generator`` (format ``mrct-generator-1``), eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: trained generator file not found")
    try:
        payload: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"{path}: expected a trained generator file, could not read it ({error})") from None
    if not isinstance(payload, dict) or payload.get("format") != GENERATOR_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: expected a dict with format {GENERATOR_FORMAT!r}, got {found!r}")
    net = build_generator(payload.get("network", RESNET_KIND), payload["architecture"])
    try:
        net.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: state dict does not match its architecture: {error}") from None
    return net.to(device).eval()


def generator_metadata(path: str | Path) -> dict[str, Any]:
    """Everything a trained generator file records except its weights (model, direction, size...)."""
    path = Path(path)
    load_trained_generator(path)  # validates the file with clear errors
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in payload.items() if k != "state_dict"}
