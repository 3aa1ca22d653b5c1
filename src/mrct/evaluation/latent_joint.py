"""One joint embedding of every model's latent features, one panel per generator direction.

What the points are. The channels of two networks do not correspond: channel 17 of one fine-tuned
zoo generator and channel 17 of another are unrelated filters, and standardising the features per
model or jointly does not change that. Stacking the raw feature vectors of all models and
embedding them would therefore place points by distances between unrelated coordinates (models
would separate by their feature scales, or overlap by chance). What is comparable between models
is how each one arranges the *same* test images. So the point of (model, image) is that image's
**distance profile** under the model: its Euclidean distances, in the model's own standardised
feature space (each feature z-scored over the model's images), to every test image, divided by
the model's mean distance between distinct images (a row of the representational dissimilarity
matrix of representational similarity analysis, Kriegeskorte et al. 2008). A profile does not
change under a permutation, sign flip, scale or offset of a model's channels, nor under the
model's overall feature scale; all profiles have one coordinate per test image, so they share
one space. Models that organise the images alike put an image's points together; a model whose
latent geometry differs stands apart; within the cloud, modality clusters show the domain
information the models share.

The features are those of :mod:`mrct.evaluation.latent` (per-channel mean and standard deviation of the
bottleneck), read back from ``results/latent/{model}_features.npz``; every model must have seen
the same test images in the same order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.evaluation.latent import (
    GENERATORS,
    MODALITIES,
    LatentSettings,
    tsne_embedding,
    umap_embedding,
    zscore_columns,
)

log = logging.getLogger(__name__)

#: How the figures name the embedding methods.
METHOD_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}
#: Columns that label each row of a features file (one row per test image and modality).
LABEL_KEYS = ("modality", "patient", "slice")


def distance_profiles(features: np.ndarray) -> np.ndarray:
    """Row i: distances of image i to every image in standardised feature space, over their mean.

    ``features`` is ``[n, d]``; the result is ``[n, n]`` with a zero diagonal and mean 1 off it.
    """
    from sklearn.metrics import pairwise_distances

    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"expected features [n >= 2, d], got shape {features.shape}")
    distances = pairwise_distances(zscore_columns(features))
    mean_off_diagonal = distances[~np.eye(len(distances), dtype=bool)].mean()
    if not mean_off_diagonal > 0:
        raise ValueError("expected features that differ between images, got identical rows")
    return distances / mean_off_diagonal


def read_features(path: str | Path, generator: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Row labels (modality, patient, slice) and the ``[2N, F]`` features of one generator."""
    key = f"features_{generator}"
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in (*LABEL_KEYS, key) if k not in data.files]
        if missing:
            raise ValueError(f"{path}: expected arrays {[*LABEL_KEYS, key]}, missing {missing}")
        labels = pd.DataFrame({k: data[k].astype(str) for k in LABEL_KEYS})
        features = np.asarray(data[key])
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"{path}: expected {key} of shape [{len(labels)}, F], got {features.shape}")
    return labels, features


def joint_points(latent_files: Mapping[str, str | Path], generator: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Distance profiles of every model stacked: ``[M * 2N, 2N]``, and one label row per point."""
    if not latent_files:
        raise ValueError("expected at least one model's features file, got none")
    profiles, labels = [], []
    reference, reference_path = None, None
    for model, path in latent_files.items():
        rows, features = read_features(path, generator)
        if reference is None:
            reference, reference_path = rows, path
        elif not rows.equals(reference):
            raise ValueError(f"{path}: expected the same test images, in the same order, as {reference_path}; got different rows")
        profiles.append(distance_profiles(features))
        labels.append(rows.assign(model=model, generator=generator))
    return np.concatenate(profiles), pd.concat(labels, ignore_index=True)


def joint_embedding(latent_files: Mapping[str, str | Path], settings: LatentSettings) -> pd.DataFrame:
    """t-SNE and UMAP of the joint points of each generator: one row per (generator, method, model, image).

    Columns: ``generator, method, model, modality, patient, slice, x, y``. The profiles are
    already in one unit (the mean distance of each model), so they are embedded as they are, not
    standardised again (that would reweight the test images).
    """
    frames = []
    for generator in GENERATORS:
        points, labels = joint_points(latent_files, generator)
        log.info("joint embedding of G_%s: %d points (%d models)", generator, len(points), len(latent_files))
        methods = {
            "tsne": tsne_embedding(points, settings.tsne_perplexity, settings.seed, standardise=False),
            "umap": umap_embedding(points, settings.umap_n_neighbors, settings.seed, standardise=False),
        }
        for method, xy in methods.items():
            frames.append(labels.assign(method=method, x=xy[:, 0], y=xy[:, 1]))
    columns = ["generator", "method", "model", *LABEL_KEYS, "x", "y"]
    return pd.concat(frames, ignore_index=True)[columns]


def plot_joint(frame: pd.DataFrame, method: str):
    """One panel per generator: every model's points, colour = model, marker = input modality."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    models = list(dict.fromkeys(frame["model"]))
    # tab10 keeps up to 10 models apart; tab20 (paired hues) up to 20, e.g. the 18 zoo models and scratch.
    palette = sns.color_palette("tab10" if len(models) <= 10 else "tab20" if len(models) <= 20 else "husl", len(models))
    fig, axes = plt.subplots(1, len(GENERATORS), figsize=(6.0 * len(GENERATORS), 5.2), squeeze=False)
    for i, (ax, generator) in enumerate(zip(axes[0], GENERATORS, strict=True)):
        part = frame[(frame["generator"] == generator) & (frame["method"] == method)]
        sns.scatterplot(
            data=part, x="x", y="y", hue="model", hue_order=models, style="modality", style_order=list(MODALITIES),
            palette=palette, ax=ax, s=14, linewidth=0, legend=i == len(GENERATORS) - 1,
        )
        ax.set_title(f"All models: G_{generator} ({METHOD_NAMES.get(method, method)} of distance profiles)", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xticks([])
        ax.set_yticks([])
    legend = axes[0][-1].get_legend()
    if legend is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, title=None, frameon=False)
    fig.tight_layout()
    return fig
