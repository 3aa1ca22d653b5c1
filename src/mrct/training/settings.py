"""Training settings: one frozen value built from the config, hashed for checkpoint validity.

Everything the training loop needs is in ``TrainSettings``; nothing reads a global options
object, so a function's behaviour is visible in its arguments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from mrct.models.registry import model_info, starts_from_file, uses_zoo_networks, zoo_architecture

log = logging.getLogger(__name__)

STRATEGIES = ("full", "freeze_encoder", "adapters")
AUTOCAST = ("auto", "none", "bf16", "fp16")
#: Settings that do not change the trained weights: out of the fingerprint and out of the train
#: rule's params (rules/common.smk), so changing them neither discards a checkpoint nor reruns.
RESULT_FREE = ("checkpoint_minutes", "device")
#: The reference discriminator width; zoo models train with the reference networks throughout.
ZOO_NDF = 64


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one CycleGAN fine-tuning run (see config.yaml ``train`` for meaning)."""

    model: str
    seed: int
    ngf: int
    n_blocks: int
    ndf: int
    d_layers: int = 3
    strategy: str = "full"
    adapter_units: int = 256
    n_epochs: int = 100
    n_epochs_decay: int = 100
    batch_size: int = 2
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    lambda_paired: float = 0.0
    pool_size: int = 50
    load_factor: float = 1.125
    flip: bool = True
    checkpoint_minutes: float = 10.0
    device: str = "auto"
    autocast: str = "auto"
    channels_last: bool = True
    tf32: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"train.strategy: expected one of {STRATEGIES}, got {self.strategy!r}")
        if self.autocast not in AUTOCAST:
            raise ValueError(f"train.autocast: expected one of {AUTOCAST}, got {self.autocast!r}")
        if self.n_epochs < 0 or self.n_epochs_decay < 0 or self.total_epochs < 1:
            raise ValueError(
                f"train: expected n_epochs + n_epochs_decay >= 1, got {self.n_epochs} + {self.n_epochs_decay}"
            )
        if self.checkpoint_minutes <= 0:
            raise ValueError(f"train.checkpoint_minutes: expected > 0, got {self.checkpoint_minutes}")
        if self.load_factor < 1:
            raise ValueError(f"train.load_factor: expected >= 1, got {self.load_factor}")

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    @property
    def generator_architecture(self) -> dict[str, int]:
        """ResnetGenerator kwargs of the pretrained part (adapters are added on top)."""
        return {"input_nc": 3, "output_nc": 3, "ngf": self.ngf, "n_blocks": self.n_blocks}

    def check_image_size(self, size: int) -> None:
        """The PatchGAN halves the image ``d_layers`` times, then applies two 4x4 convolutions."""
        side = size
        for _ in range(self.d_layers):
            side = (side + 2 - 4) // 2 + 1
        if side - 2 < 2 or size % 4:
            raise ValueError(
                f"slices of {size} px are too small for a {self.d_layers}-layer PatchGAN (or not a multiple "
                f"of 4); use larger slices or fewer network.d_layers"
            )

    def fingerprint(self, **inputs: Any) -> str:
        """sha256 of every setting that changes the result, plus ``inputs`` (data, start weights).

        The ``RESULT_FREE`` settings are left out: resuming with another checkpoint interval, or
        on another machine, is legitimate.
        """
        values = dataclasses.asdict(self)
        for key in RESULT_FREE:
            values.pop(key)
        text = json.dumps({"settings": values, "inputs": inputs}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def settings_from_config(config: Mapping[str, Any], model: str) -> TrainSettings:
    """Build the settings of ``model`` from the validated workflow config.

    Zoo models and their control ``random_init`` use the zoo's generator (ngf 64, 9 blocks) and
    the reference discriminator (ndf 64); ``scratch`` and ``skimage_photos`` use the config's
    ``network`` section.
    The cycle weight is ``train.lambda_cycle`` or, when null, the model's registry value.
    """
    train = dict(config.get("train", {}))
    network = dict(config.get("network", {}))
    if uses_zoo_networks(model):
        arch = zoo_architecture()
        ngf, n_blocks, ndf, d_layers = arch["ngf"], arch["n_blocks"], ZOO_NDF, 3
    else:
        ngf, n_blocks = network.get("ngf", 64), network.get("n_blocks", 9)
        ndf, d_layers = network.get("ndf", 64), network.get("d_layers", 3)
    lambda_cycle = train.get("lambda_cycle")
    if lambda_cycle is None:
        lambda_cycle = float(model_info(model)["lambda_cycle"])
    if not starts_from_file(model) and not uses_zoo_networks(model) and train.get("strategy", "full") != "full":
        # Freezing random layers is no baseline: scratch always trains every layer, so that the
        # comparison asks "does the pretrained start help", not "do frozen random features help".
        log.warning("model %s: strategy %r ignored, a random start trains every layer", model, train["strategy"])
        train["strategy"] = "full"
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    passed = {k: v for k, v in train.items() if k in names and k != "lambda_cycle"}
    return TrainSettings(
        model=model,
        seed=int(config["seed"]),
        ngf=int(ngf),
        n_blocks=int(n_blocks),
        ndf=int(ndf),
        d_layers=int(d_layers),
        lambda_cycle=float(lambda_cycle),
        **passed,
    )
