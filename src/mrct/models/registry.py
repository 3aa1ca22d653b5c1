"""The model registry: every model a config may name, zoo or local, and what it starts from.

Zoo facts (URL, category, cycle weight) live in ``data/zoo.yaml`` (the CycleGAN zoo) and
``data/pix2pix_zoo.yaml`` (the pix2pix zoo), so adding a zoo model is a data change. The local
models are entries of ``LOCAL_MODELS`` below. Every other module asks this registry
(``model_label``, ``starts_from_file``, ``model_info``, ``model_family``) rather than testing names.

A model's family says how it trains: ``cyclegan`` (two ResNet generators, unpaired CycleGAN
objective) or ``pix2pix`` (two U-Net generators, one per direction, each trained on the
registered pairs with a conditional PatchGAN and L1).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

#: Non-zoo models: ``scratch`` starts from random weights at the ``network`` section's width and
#: trains every layer; ``random_init`` is the like-for-like control of the zoo models: their
#: networks (``zoo_networks``), random weights, and the zoo models' training (the configured
#: strategy, frozen layers and adapters included), so it differs from them only in its start;
#: ``skimage_photos`` is pretrained offline by this package on scikit-image's sample photographs
#: (see mrct.models.pretrain_photos). ``start_file`` says whether training starts from a weight
#: file (``resources/pretrained``).
LOCAL_MODELS = {
    "scratch": {
        "category": "baseline (random init)",
        "lambda_cycle": 10.0,
        "start_file": False,
        "label": "scratch (random initialisation, not pretrained)",
    },
    "random_init": {
        "category": "control (random init, zoo networks and training)",
        "lambda_cycle": 10.0,
        "start_file": False,
        "zoo_networks": True,
        "label": "random_init (zoo architecture from random weights, trained like a zoo model; the control)",
    },
    "skimage_photos": {
        "category": "local pretraining (scikit-image photos)",
        "lambda_cycle": 10.0,
        "start_file": True,
        "label": "skimage_photos (locally pretrained on scikit-image photos, not a zoo model)",
    },
    "pix2pix_scratch": {
        "family": "pix2pix",
        "category": "paired baseline (random init)",
        "start_file": False,
        "label": "pix2pix_scratch (paired U-Net, random initialisation, not pretrained)",
    },
}
#: How each family trains (see the module docstring).
FAMILIES = ("cyclegan", "pix2pix")


@cache
def _registry_file() -> dict[str, Any]:
    return yaml.safe_load(resources.files("mrct").joinpath("data/zoo.yaml").read_text(encoding="utf-8"))


def load_zoo_registry() -> dict[str, dict[str, Any]]:
    """Zoo model name -> {category, lambda_cycle, url}."""
    data = _registry_file()
    return {
        name: {**facts, "url": data["url_template"].format(model=name)}
        for name, facts in data["models"].items()
    }


def zoo_architecture() -> dict[str, int]:
    return dict(_registry_file()["architecture"])


def is_zoo_model(name: str) -> bool:
    """Whether ``name`` is one of the CycleGAN zoo's generators (see ``is_pix2pix_zoo_model``)."""
    return name in _registry_file()["models"]


@cache
def _pix2pix_file() -> dict[str, Any]:
    text = resources.files("mrct").joinpath("data/pix2pix_zoo.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_pix2pix_zoo() -> dict[str, dict[str, Any]]:
    """pix2pix zoo model name -> {family, category, file, url}."""
    data = _pix2pix_file()
    return {
        name: {**facts, "family": "pix2pix", "url": data["url_template"].format(file=facts["file"])}
        for name, facts in data["models"].items()
    }


def pix2pix_zoo_architecture() -> dict[str, Any]:
    """The published pix2pix generators' UnetGenerator keywords, plus their ``n_parameters``."""
    return dict(_pix2pix_file()["architecture"])


def is_pix2pix_zoo_model(name: str) -> bool:
    return name in _pix2pix_file()["models"]


def model_info(name: str) -> dict[str, Any]:
    """Family, category (and cycle weight for CycleGAN models) of any configured model."""
    if name in LOCAL_MODELS:
        return {"family": "cyclegan", **LOCAL_MODELS[name]}
    if is_pix2pix_zoo_model(name):
        return load_pix2pix_zoo()[name]
    try:
        return {"family": "cyclegan", **load_zoo_registry()[name]}
    except KeyError:
        known = sorted([*LOCAL_MODELS, *_registry_file()["models"], *_pix2pix_file()["models"]])
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}") from None


def uses_zoo_networks(name: str) -> bool:
    """Whether ``name`` has the zoo's networks and training (zoo models and their control)."""
    return is_zoo_model(name) or bool(model_info(name).get("zoo_networks", False))


def model_family(name: str) -> str:
    """``cyclegan`` or ``pix2pix``: which objective and generator ``name`` trains with."""
    return str(model_info(name)["family"])


def downloadable_models() -> dict[str, str]:
    """Every model whose start file is downloaded (both zoos): name -> URL."""
    return {name: facts["url"] for name, facts in {**load_zoo_registry(), **load_pix2pix_zoo()}.items()}


def published_generator(name: str) -> tuple[str, dict[str, Any]]:
    """The generator class (``resnet`` or ``unet``) and keyword arguments a zoo file must load into."""
    if is_pix2pix_zoo_model(name):
        arch = pix2pix_zoo_architecture()
        return "unet", {k: arch[k] for k in ("input_nc", "output_nc", "num_downs", "ngf", "use_dropout")}
    if is_zoo_model(name):
        arch = zoo_architecture()
        return "resnet", {k: arch[k] for k in ("input_nc", "output_nc", "ngf", "n_blocks")}
    raise ValueError(f"model {name!r} is not a zoo model; zoo models: {', '.join(sorted(downloadable_models()))}")


def starts_from_file(name: str) -> bool:
    """Whether training of ``name`` starts from a pretrained weight file (every zoo model does)."""
    return bool(model_info(name).get("start_file", True))


def model_label(name: str) -> str:
    """How a model is named in logs and files: zoo models by category, the others plainly."""
    info = model_info(name)
    return info.get("label") or f"{name} (pytorch-CycleGAN-and-pix2pix zoo, {info['category']})"
