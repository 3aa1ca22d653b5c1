"""The model zoo registry: which pretrained generators exist, where they come from, their lambda.

The facts live in ``data/zoo.yaml`` so that adding a model is a data change, not a code change.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

#: Non-zoo models: ``scratch`` starts from random weights; ``skimage_photos`` is pretrained
#: offline by this package on scikit-image's sample photographs (see mrct.models.pretrain_photos).
LOCAL_MODELS = {
    "scratch": {"category": "baseline (random init)", "lambda_cycle": 10.0},
    "skimage_photos": {"category": "local pretraining (scikit-image photos)", "lambda_cycle": 10.0},
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
