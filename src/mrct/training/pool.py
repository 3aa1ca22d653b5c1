"""The image pool of Shrivastava et al. (2017), as CycleGAN uses it for its discriminators.

The discriminator is updated with a mix of the newest fakes and older ones held in a buffer,
which damps oscillation between generator and discriminator. The pool owns its random
generator, so its behaviour is reproducible and its whole state can be checkpointed.
"""

from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Buffer of up to ``size`` generated images; ``query`` returns a batch mixing new and old."""

    def __init__(self, size: int, seed: int) -> None:
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """For each image: while the pool fills, keep and return it; then with p=0.5 return a
        stored image and store the new one in its place, else return the new one."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() > 0.5:
                index = self.rng.randint(0, self.size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict[str, Any]:
        state = self.rng.getstate()
        return {"images": [i.cpu() for i in self.images], "rng": [state[0], list(state[1]), state[2]]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | str = "cpu") -> None:
        self.images = [i.to(device) for i in state["images"]]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
