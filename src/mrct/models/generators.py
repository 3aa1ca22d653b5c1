"""Every generator class by the name files record, so a file alone says which network to rebuild.

``resnet`` is the CycleGAN zoo's ResNet generator (mrct.models.networks), ``unet`` the pix2pix
zoo's U-Net (mrct.models.unet). Files written before the U-Net existed record no name: they are
ResNet generators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from mrct.models.networks import ResnetGenerator
from mrct.models.unet import UNET_KIND, UnetGenerator

RESNET_KIND = "resnet"
GENERATOR_CLASSES: dict[str, type[nn.Module]] = {RESNET_KIND: ResnetGenerator, UNET_KIND: UnetGenerator}


def generator_kind(net: nn.Module) -> str:
    """The name under which ``net``'s class is recorded in files."""
    for kind, cls in GENERATOR_CLASSES.items():
        if type(net) is cls:
            return kind
    raise ValueError(f"unknown generator class {type(net).__name__}; known: {sorted(GENERATOR_CLASSES)}")


def build_generator(kind: str, architecture: Mapping[str, Any]) -> nn.Module:
    """A new generator of class ``kind`` with ``architecture`` as keyword arguments."""
    try:
        cls = GENERATOR_CLASSES[kind]
    except KeyError:
        raise ValueError(f"unknown generator kind {kind!r}; known: {sorted(GENERATOR_CLASSES)}") from None
    return cls(**architecture)
