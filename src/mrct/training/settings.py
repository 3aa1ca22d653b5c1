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

from mrct.models.registry import (
    is_pix2pix_zoo_model,
    model_family,
    model_info,
    pix2pix_zoo_architecture,
    starts_from_file,
    uses_zoo_networks,
    zoo_architecture,
)

log = logging.getLogger(__name__)

STRATEGIES = ("full", "freeze_encoder", "adapters")
AUTOCAST = ("auto", "none", "bf16", "fp16")
#: Settings that do not change the trained weights: out of the fingerprint and out of the train
#: rule's params (rules/common.smk), so changing them neither discards a checkpoint nor reruns.
RESULT_FREE = ("checkpoint_minutes", "device")
#: Settings added after runs existed, left out of the train rule's params and the checkpoint
#: fingerprint while unset (None): a finished or half-done run is not retrained for their sake.
UNSET_IS_ABSENT = ("max_steps_per_epoch",)
#: The reference discriminator width; zoo models train with the reference networks throughout.
ZOO_NDF = 64


def tracked_settings(values: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a run's result: without ``RESULT_FREE`` and unset ``UNSET_IS_ABSENT``."""
    return {k: v for k, v in values.items()
            if k not in RESULT_FREE and not (k in UNSET_IS_ABSENT and v is None)}


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
    #: pix2pix models: weight of the L1 term (the reference 100); 0 for CycleGAN models.
    lambda_l1: float = 0.0
    #: pix2pix models: U-Net down-samplings (8 for the zoo's unet_256); 0 for CycleGAN models.
    num_downs: int = 0
    pool_size: int = 50
    load_factor: float = 1.125
    flip: bool = True
    #: At most this many batches per epoch (None: all); smoke runs and rehearsals only.
    max_steps_per_epoch: int | None = None
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
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ValueError(f"train.max_steps_per_epoch: expected null or >= 1, got {self.max_steps_per_epoch}")
        if self.checkpoint_minutes <= 0:
            raise ValueError(f"train.checkpoint_minutes: expected > 0, got {self.checkpoint_minutes}")
        if self.load_factor < 1:
            raise ValueError(f"train.load_factor: expected >= 1, got {self.load_factor}")

    @property
    def total_epochs(self) -> int:
        return self.n_epochs + self.n_epochs_decay

    @property
    def family(self) -> str:
        """``cyclegan`` or ``pix2pix``, from the model registry."""
        return model_family(self.model)

    @property
    def paired_data(self) -> bool:
        """Whether batches keep the registered MR/CT pairs together (pix2pix, or a paired L1 term)."""
        return self.family == "pix2pix" or self.lambda_paired > 0

    @property
    def generator_kind(self) -> str:
        """The generator class (mrct.models.generators): the U-Net for pix2pix, else the ResNet."""
        return "unet" if self.family == "pix2pix" else "resnet"

    @property
    def generator_architecture(self) -> dict[str, Any]:
        """Generator kwargs of the pretrained part (adapters are added on top)."""
        if self.family == "pix2pix":
            return {"input_nc": 3, "output_nc": 3, "num_downs": self.num_downs, "ngf": self.ngf, "use_dropout": True}
        return {"input_nc": 3, "output_nc": 3, "ngf": self.ngf, "n_blocks": self.n_blocks}

    def check_image_size(self, size: int) -> None:
        """The PatchGAN halves the image ``d_layers`` times, then applies two 4x4 convolutions; a
        U-Net halves it ``num_downs`` times."""
        if self.family == "pix2pix" and size % 2**self.num_downs:
            raise ValueError(
                f"slices.size: model {self.model} is a U-Net with {self.num_downs} down-samplings and needs "
                f"slices whose side is a multiple of {2**self.num_downs} px, got {size}"
                + (" (the pix2pix zoo's unet_256: set slices.size to 256)" if is_pix2pix_zoo_model(self.model) else "")
            )
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
        values = tracked_settings(dataclasses.asdict(self))
        text = json.dumps({"settings": values, "inputs": inputs}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def settings_from_config(config: Mapping[str, Any], model: str) -> TrainSettings:
    """Build the settings of ``model`` from the validated workflow config.

    Zoo models and their control ``random_init`` use the zoo's generator (ngf 64, 9 blocks) and
    the reference discriminator (ndf 64); ``scratch`` and ``skimage_photos`` use the config's
    ``network`` section.
    The cycle weight is ``train.lambda_cycle`` or, when null, the model's registry value.
    pix2pix models: see ``_pix2pix_settings``.
    """
    if model_family(model) == "pix2pix":
        return _pix2pix_settings(config, model)
    train = dict(config.get("train", {}))
    train.pop("lambda_l1", None)  # a pix2pix weight: changing it must not rerun CycleGAN models
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


def unet_downs_for_size(size: int, most: int = 8) -> int:
    """Down-samplings of a U-Net for ``size`` px slices: as many halvings as divide ``size``, at most
    ``most`` (the reference unet_256's 8), so a power of two reaches a 1x1 bottleneck as unet_256 does."""
    downs = 0
    while downs < most and size % 2 ** (downs + 1) == 0:
        downs += 1
    if downs < 2:
        raise ValueError(f"slices.size: a U-Net needs a side divisible by 4, got {size}")
    return downs


def _pix2pix_settings(config: Mapping[str, Any], model: str) -> TrainSettings:
    """Settings of a pix2pix model: the pix2pix objective, the U-Net and a batch-norm PatchGAN.

    The zoo models use the zoo's unet_256 (8 down-samplings, ngf 64) and the reference
    discriminator (ndf 64, 3 layers); ``pix2pix_scratch`` takes the ``network`` section's widths
    and as many down-samplings as ``slices.size`` allows, up to unet_256's 8 (a 1x1 bottleneck
    for a power of two, as unet_256 has at 256 px). The CycleGAN terms are off (no cycle,
    identity or image pool: the reference pix2pix has none) so that changing them does not
    rerun a pix2pix model; the L1 weight is ``train.lambda_l1``.
    """
    train = dict(config.get("train", {}))
    network = dict(config.get("network", {}))
    if is_pix2pix_zoo_model(model):
        arch = pix2pix_zoo_architecture()
        ngf, num_downs, ndf, d_layers = arch["ngf"], arch["num_downs"], ZOO_NDF, 3
    else:
        ngf, ndf, d_layers = network.get("ngf", 64), network.get("ndf", 64), network.get("d_layers", 3)
        num_downs = unet_downs_for_size(int(config["slices"]["size"]))
    if not starts_from_file(model) and train.get("strategy", "full") != "full":
        log.warning("model %s: strategy %r ignored, a random start trains every layer", model, train["strategy"])
        train["strategy"] = "full"
    if train.get("strategy", "full") == "adapters":
        raise ValueError(f"train.strategy: adapters are defined for the ResNet generator only; model {model} is "
                         "a pix2pix U-Net (use full or freeze_encoder, or leave pix2pix models out of `models`)")
    unused = ("lambda_cycle", "lambda_identity", "lambda_paired", "pool_size", "lambda_l1")
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    passed = {k: v for k, v in train.items() if k in names and k not in unused}
    return TrainSettings(
        model=model,
        seed=int(config["seed"]),
        ngf=int(ngf),
        n_blocks=0,
        ndf=int(ndf),
        d_layers=int(d_layers),
        num_downs=int(num_downs),
        lambda_cycle=0.0,
        lambda_identity=0.0,
        lambda_paired=0.0,
        pool_size=0,
        lambda_l1=float(train.get("lambda_l1", 100.0)),
        **passed,
    )


def check_slice_size(config: Mapping[str, Any]) -> None:
    """Fail while the DAG is built when a configured U-Net cannot take ``slices.size`` px slices."""
    for model in config["models"]:
        settings = settings_from_config(config, model)
        if settings.family == "pix2pix":
            settings.check_image_size(int(config["slices"]["size"]))
