"""The model registry: every model a config may name, zoo or local, and what it starts from.

Zoo facts (URL, category, cycle weight) live in ``data/zoo.yaml``, so adding a zoo model is a data
change. The two local models are entries of ``LOCAL_MODELS`` below. Every other module asks
this registry (``model_label``, ``starts_from_file``, ``model_info``) rather than testing names.
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
}


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
    return name in _registry_file()["models"]


def model_info(name: str) -> dict[str, Any]:
    """Category and cycle weight of any configured model, zoo or local."""
    if name in LOCAL_MODELS:
        return dict(LOCAL_MODELS[name])
    try:
        return load_zoo_registry()[name]
    except KeyError:
        known = sorted([*LOCAL_MODELS, *_registry_file()["models"]])
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}") from None


def uses_zoo_networks(name: str) -> bool:
    """Whether ``name`` has the zoo's networks and training (zoo models and their control)."""
    return is_zoo_model(name) or bool(model_info(name).get("zoo_networks", False))


def starts_from_file(name: str) -> bool:
    """Whether training of ``name`` starts from a pretrained weight file (every zoo model does)."""
    return bool(model_info(name).get("start_file", True))


def model_label(name: str) -> str:
    """How a model is named in logs and files: zoo models by category, the others plainly."""
    info = model_info(name)
    return info.get("label") or f"{name} (pytorch-CycleGAN-and-pix2pix zoo, {info['category']})"
