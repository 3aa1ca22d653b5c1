"""config/paper.yaml is the study as written; config/recommended.yaml differs only where docs/study.md says.

The expected values below are typed in from the study's text (see docs/study.md), not read from
the registry or the config, so a changed registry value or config key fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mrct.config import load_config
from mrct.models.networks import ResnetGenerator
from mrct.training.build import apply_strategy
from mrct.training.settings import settings_from_config
from mrct.models.registry import load_zoo_registry

ROOT = Path(__file__).resolve().parents[1]
STUDY_DOC = ROOT / "docs" / "study.md"

# The study's cycle weight per category of the pretraining data.
LAMBDA_BY_CATEGORY = {
    "artistic style": 9.0,
    "animal": 10.0,
    "natural landscape": 10.0,
    "photography": 10.0,
    "satellite/map": 11.0,
    "urban": 11.0,
}
ZOO = {
    "style_monet": "artistic style", "style_cezanne": "artistic style", "style_ukiyoe": "artistic style",
    "style_vangogh": "artistic style", "horse2zebra": "animal", "zebra2horse": "animal",
    "apple2orange": "natural landscape", "orange2apple": "natural landscape",
    "summer2winter_yosemite": "natural landscape", "winter2summer_yosemite": "natural landscape",
    "monet2photo": "photography", "iphone2dslr_flower": "photography", "sat2map": "satellite/map",
    "map2sat": "satellite/map", "cityscapes_photo2label": "urban", "cityscapes_label2photo": "urban",
    "facades_photo2label": "urban", "facades_label2photo": "urban",
}


@pytest.fixture(scope="module")
def paper():
    return load_config(ROOT / "config.yaml", ROOT / "config" / "paper.yaml")


def test_paper_config_holds_the_18_zoo_models_and_scratch(paper):
    assert len(ZOO) == 18
    assert sorted(paper["models"]) == sorted([*ZOO, "scratch"])
    assert set(load_zoo_registry()) == set(ZOO)


@pytest.mark.parametrize("model", sorted(ZOO))
def test_each_zoo_model_trains_with_the_study_settings(paper, model):
    s = settings_from_config(paper, model)
    assert s.lambda_cycle == LAMBDA_BY_CATEGORY[ZOO[model]]
    assert (s.batch_size, s.n_epochs, s.n_epochs_decay, s.lr) == (2, 100, 100, 0.001)
    assert (s.strategy, s.adapter_units) == ("adapters", 256)
    assert (s.ngf, s.n_blocks, s.ndf) == (64, 9, 64)


def test_scratch_is_the_zoo_network_trained_in_full(paper):
    s = settings_from_config(paper, "scratch")
    assert (s.ngf, s.n_blocks, s.ndf) == (64, 9, 64)
    assert s.strategy == "full"  # frozen random layers would be no baseline
    assert (s.batch_size, s.n_epochs, s.n_epochs_decay, s.lr) == (2, 100, 100, 0.001)


def test_paper_data_settings_are_the_study(paper):
    assert paper["dataset"]["source"] == "synthrad2023"
    assert paper["dataset"]["max_patients"] == 18
    assert paper["preprocess"]["bias_correction"] == "n3"
    assert paper["slices"]["size"] == 256
    assert paper["slices"]["per_patient"] == 20
    assert paper["split"]["train_fraction"] == 0.7


def test_adapters_train_exactly_two_new_256_unit_layers_on_a_frozen_zoo_generator():
    net = ResnetGenerator(ngf=64, n_blocks=9)
    frozen_before = sum(p.numel() for p in net.parameters())
    apply_strategy(net, "adapters", 256)
    trainable = {name: p for name, p in net.named_parameters() if p.requires_grad}
    assert sorted(trainable) == ["adapter.fc1.bias", "adapter.fc1.weight", "adapter.fc2.bias", "adapter.fc2.weight"]
    # fc1: 256 bottleneck channels -> 256 units; fc2: 256 units -> 256 channels (per pixel).
    assert trainable["adapter.fc1.weight"].shape[:2] == (256, 256)
    assert trainable["adapter.fc2.weight"].shape[:2] == (256, 256)
    assert sum(p.numel() for p in trainable.values()) == 2 * (256 * 256 + 256)
    assert sum(p.numel() for p in net.parameters() if not p.requires_grad) == frozen_before == 11378179


def _leaf_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys.extend(_leaf_keys(value, path + ".") if isinstance(value, dict) else [path])
    return keys


@pytest.mark.parametrize("name", ["paper.yaml", "recommended.yaml"])
def test_study_doc_names_every_key_the_study_configs_set(name):
    overrides = yaml.safe_load((ROOT / "config" / name).read_text(encoding="utf-8"))
    doc = STUDY_DOC.read_text(encoding="utf-8")
    missing = [key for key in _leaf_keys(overrides) if f"`{key}`" not in doc]
    assert not missing, f"docs/study.md does not name {missing} (set in config/{name})"


def test_recommended_differs_from_paper_only_where_the_doc_says(paper):
    recommended = load_config(ROOT / "config.yaml", ROOT / "config" / "recommended.yaml")
    # the like-for-like control instead of scratch (a duplicate under strategy full at 64/9)
    assert sorted(recommended["models"]) == sorted([*ZOO, "random_init"])
    assert (recommended["split"]["folds"], recommended["train"]["replicates"]) == (6, 3)
    differing = sorted(
        key for key in set(_leaf_keys(paper)) | set(_leaf_keys(recommended))
        if _get(paper, key) != _get(recommended, key)
    )
    doc = STUDY_DOC.read_text(encoding="utf-8")
    section = doc.split("## config/recommended.yaml", 1)[1]
    documented = set(re.findall(r"`([a-z_0-9.]+)`", section))
    assert differing, "recommended.yaml should differ from the study somewhere"
    assert set(differing) <= documented, f"undocumented differences: {set(differing) - documented}"


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree
