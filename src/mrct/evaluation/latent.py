"""Latent space of the trained generators: pooled bottleneck features, t-SNE/UMAP, separability.

Each model has two generators (MR->CT and CT->MR). Every test MR and every test CT slice is passed
through each of them; the features after the residual blocks (``ResnetGenerator.bottleneck``)
are global-average pooled to one vector per slice. Each generator's features are embedded on
their own (the two generators are different networks, so their spaces are not comparable),
coloured by the modality of the input. Separability of the modalities says how much of the input
domain a generator still encodes at its bottleneck: silhouette score (features standardised,
Euclidean) and k-nearest-neighbour modality accuracy under stratified cross-validation.

Tiny test sets are common (the demo has a few dozen slices), so perplexity, UMAP neighbours, k
and the number of folds are clamped to what the sample size allows, and the clamped values are
recorded next to the scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mrct.slices.manifest import DIRECTIONS

log = logging.getLogger(__name__)

GENERATORS = tuple(DIRECTIONS)
MODALITIES = ("MR", "CT")


@dataclass(frozen=True)
class LatentSettings:
    """The ``latent`` config section plus the global seed."""

    seed: int
    tsne_perplexity: float = 10.0
    umap_n_neighbors: int = 10
    knn_k: int = 5
    max_slices: int | None = None
    batch_size: int = 8


def pooled_bottleneck(generator: torch.nn.Module, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Global-average-pooled bottleneck features [N, C] of uint8 images [N, H, W]."""
    from mrct.models.networks import to_network_input

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = to_network_input(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
            features = generator.bottleneck(batch.to(device))
            out.append(features.float().mean(dim=(2, 3)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def extract_features(
    generators: Mapping[str, torch.nn.Module], mr: np.ndarray, ct: np.ndarray, batch_size: int = 8, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Features of every MR and CT slice through each generator: ``{generator: [2N, C]}``.

    Rows are the N MR slices followed by the N CT slices (see :func:`modality_labels`).
    """
    if mr.shape != ct.shape:
        raise ValueError(f"expected as many MR as CT slices of one size, got {mr.shape} and {ct.shape}")
    return {
        name: np.concatenate([pooled_bottleneck(net, mr, batch_size, device), pooled_bottleneck(net, ct, batch_size, device)])
        for name, net in generators.items()
    }


def modality_labels(n_per_modality: int) -> np.ndarray:
    return np.repeat(np.array(MODALITIES), n_per_modality)


def _standardise(features: np.ndarray) -> np.ndarray:
    std = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)


def clamped_perplexity(requested: float, n_samples: int) -> float:
    """scikit-learn needs perplexity < n_samples; keep about 3 perplexities of neighbours."""
    return float(max(1.0, min(requested, (n_samples - 1) / 3.0)))


def tsne_embedding(features: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(features)
    tsne = TSNE(n_components=2, perplexity=clamped_perplexity(perplexity, n), init="pca", random_state=seed)
    return tsne.fit_transform(_standardise(features))


def umap_embedding(features: np.ndarray, n_neighbors: int, seed: int) -> np.ndarray:
    import umap

    n = len(features)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=int(max(2, min(n_neighbors, n - 1))),
        random_state=seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so silences its warning
        # Spectral initialisation fails on a handful of points; random is fine there.
        init="spectral" if n > 16 else "random",
    )
    return reducer.fit_transform(_standardise(features))


def separability(features: np.ndarray, labels: np.ndarray, knn_k: int, seed: int) -> dict[str, float]:
    """Silhouette score and cross-validated k-NN accuracy of the modality labels."""
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x = _standardise(features)
    smallest = int(pd.Series(labels).value_counts().min())
    folds = min(5, smallest)
    result = {"silhouette": float(silhouette_score(x, labels)), "knn_accuracy": float("nan"), "knn_k": float("nan"), "cv_folds": float(folds)}
    if folds >= 2:
        train_size = len(x) - int(np.ceil(len(x) / folds))
        k = max(1, min(knn_k, train_size))
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), x, labels, cv=cv)
        result.update(knn_accuracy=float(scores.mean()), knn_k=float(k))
    return result


def analyse(features: Mapping[str, np.ndarray], n_per_modality: int, settings: LatentSettings) -> tuple[dict, pd.DataFrame]:
    """Embeddings (``{"tsne_mr2ct": [2N, 2], ...}``) and one separability row per generator."""
    labels = modality_labels(n_per_modality)
    embeddings, rows = {}, []
    for name, feats in features.items():
        if len(feats) < 4:
            raise ValueError(f"latent {name}: expected at least 2 slices per modality, got {n_per_modality}")
        embeddings[f"tsne_{name}"] = tsne_embedding(feats, settings.tsne_perplexity, settings.seed)
        embeddings[f"umap_{name}"] = umap_embedding(feats, settings.umap_n_neighbors, settings.seed)
        scores = separability(feats, labels, settings.knn_k, settings.seed)
        rows.append({
            "generator": name, "n_per_modality": n_per_modality, "n_features": feats.shape[1], **scores,
            "perplexity": clamped_perplexity(settings.tsne_perplexity, len(feats)),
            "silhouette_tsne": _silhouette(embeddings[f"tsne_{name}"], labels),
            "silhouette_umap": _silhouette(embeddings[f"umap_{name}"], labels),
        })
    return embeddings, pd.DataFrame(rows)


def _silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(points, labels))


def plot_embeddings(embeddings: Mapping[str, np.ndarray], method: str, n_per_modality: int, title: str, axes=None):
    """Scatter of one method's embeddings, one panel per generator, coloured by modality."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if axes is None:
        fig, axes = plt.subplots(1, len(GENERATORS), figsize=(4.2 * len(GENERATORS), 4), squeeze=False)
        axes = axes[0]
    else:
        fig = axes[0].figure
    labels = modality_labels(n_per_modality)
    for ax, name in zip(axes, GENERATORS, strict=True):
        points = embeddings[f"{method}_{name}"]
        frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "input": labels})
        sns.scatterplot(data=frame, x="x", y="y", hue="input", hue_order=list(MODALITIES), ax=ax, s=18, palette="deep")
        ax.set_title(f"{title}: G_{name} ({method.upper()})", fontsize=9)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def test_images(manifest: pd.DataFrame, max_slices: int | None) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Test rows (at most ``max_slices``, evenly spaced) and their MR and CT PNGs as uint8 stacks."""
    from mrct.io.png import read_gray_png
    from mrct.slices.manifest import evenly_spaced, split_rows

    rows = split_rows(manifest, "test")
    rows = rows.iloc[evenly_spaced(len(rows), max_slices)].reset_index(drop=True)
    mr = np.stack([read_gray_png(p) for p in rows["mr_png"]])
    ct = np.stack([read_gray_png(p) for p in rows["ct_png"]])
    return rows, mr, ct


def save_latent(path, rows: pd.DataFrame, features: Mapping[str, np.ndarray], embeddings: Mapping[str, np.ndarray]) -> None:
    """Features, embeddings and slice ids in one .npz (written atomically)."""
    from mrct.io.atomic import atomic_path

    n = len(rows)
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            modality=modality_labels(n),
            patient=np.concatenate([rows["patient"].astype(str).to_numpy()] * 2),
            slice=np.concatenate([rows["slice"].to_numpy()] * 2),
            **{f"features_{k}": v for k, v in features.items()},
            **dict(embeddings),
        )


def plot_grid(latent_files: Mapping[str, str]):
    """One row per model: t-SNE and UMAP of both generators, read back from the .npz files."""
    import matplotlib.pyplot as plt

    n = len(latent_files)
    fig, axes = plt.subplots(n, 4, figsize=(15, 3.6 * n), squeeze=False)
    for row_axes, (model, path) in zip(axes, latent_files.items(), strict=True):
        with np.load(path, allow_pickle=False) as data:
            embeddings = {k: data[k] for k in data.files if k.startswith(("tsne_", "umap_"))}
            n_per = int((data["modality"] == MODALITIES[0]).sum())
        plot_embeddings(embeddings, "tsne", n_per, model, axes=row_axes[:2])
        plot_embeddings(embeddings, "umap", n_per, model, axes=row_axes[2:])
    fig.tight_layout()
    return fig
