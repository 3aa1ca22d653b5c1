"""Latent features, clamped embeddings on tiny sets, separability scores, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrct.evaluation.latent import (
    LatentSettings,
    analyse,
    clamped_perplexity,
    extract_features,
    modality_labels,
    plot_embeddings,
    separability,
)
from mrct.models.networks import ResnetGenerator


def tiny_generators():
    torch.manual_seed(0)
    return {name: ResnetGenerator(ngf=4, n_blocks=1).eval() for name in ("mr2ct", "ct2mr")}


def test_features_are_pooled_bottlenecks_per_slice():
    gens = tiny_generators()
    rng = np.random.default_rng(0)
    mr = rng.integers(0, 256, (3, 32, 32)).astype(np.uint8)
    ct = 255 - mr
    features = extract_features(gens, mr, ct, batch_size=2)
    assert set(features) == {"mr2ct", "ct2mr"} and features["mr2ct"].shape == (6, 16)
    x = (torch.from_numpy(ct[1:2]).float()[:, None] / 127.5 - 1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = gens["ct2mr"].bottleneck(x).mean(dim=(2, 3)).numpy()[0]
    assert features["ct2mr"][4] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(ValueError, match="as many MR as CT"):
        extract_features(gens, mr, ct[:2])


def test_perplexity_is_clamped_below_the_sample_count():
    assert clamped_perplexity(30.0, 10) == 3.0 and clamped_perplexity(5.0, 1000) == 5.0
    assert clamped_perplexity(30.0, 2) == 1.0


def test_separability_of_clearly_separated_modalities():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (10, 8)), rng.normal(8, 1, (10, 8))])
    scores = separability(features, modality_labels(10), knn_k=5, seed=0)
    assert scores["knn_accuracy"] == 1.0 and scores["silhouette"] > 0.7
    mixed = separability(rng.normal(0, 1, (20, 8)), modality_labels(10), knn_k=5, seed=0)
    assert mixed["silhouette"] < 0.2


@pytest.mark.slow
def test_analyse_is_seeded_and_plots(tmp_path):
    rng = np.random.default_rng(1)
    features = {"mr2ct": rng.normal(0, 1, (8, 6)), "ct2mr": rng.normal(0, 1, (8, 6))}
    features["mr2ct"][4:] += 5
    settings = LatentSettings(seed=3, tsne_perplexity=30.0, umap_n_neighbors=15, knn_k=5)
    embeddings, table = analyse(features, 4, settings)
    again, _ = analyse(features, 4, settings)
    assert all(np.allclose(embeddings[k], again[k]) for k in embeddings)
    assert embeddings["tsne_mr2ct"].shape == (8, 2) and embeddings["umap_ct2mr"].shape == (8, 2)
    assert list(table["generator"]) == ["mr2ct", "ct2mr"] and (table["perplexity"] < 8).all()
    assert table.loc[0, "knn_accuracy"] == 1.0
    fig = plot_embeddings(embeddings, "tsne", 4, "scratch")
    fig.savefig(tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 1000
