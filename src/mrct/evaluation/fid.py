"""Fréchet distance between the feature distributions of real and synthetic test slices (FID).

FID compares distributions, not pairs: it fits a Gaussian to the features of the ground-truth
slices of a modality and one to the features of a model's outputs for that modality, and
measures ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)). Two feature spaces, neither
defined by a compared model:

* ``fid_inception``: the standard FID (Inception-v3 pool features, :mod:`mrct.models.inception`),
  comparable with the literature in kind, only when the official weights are present; without
  them the table says so and holds no number. When present, it is the FID that ranks the models.
* ``fid_random_embedding``: the same distance on the features of a fixed random-weight network
  (:mod:`mrct.models.random_embedding`: its architecture and seed are fixed in code, it is never
  trained, and it does not depend on which models are configured; per-channel means and
  standard deviations of all five stages). It needs no download, so every run has a
  distribution-level metric, and it ranks the models when Inception FID is absent. Limits: its
  scale is its own (not comparable with any Inception FID or published number); random features
  measure intensity, edge and texture statistics, not the semantic content a trained network
  sees; it is comparable between runs of this code only.

With a few dozen test slices and 2048 features the covariances are singular and FID is biased
upwards (more so for fewer slices); compare models on the same test set only. ``n_real`` and
``n_fake`` are in the table for that reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mrct.slices.manifest import DIRECTIONS, split_rows

log = logging.getLogger(__name__)

FID_COLUMNS = ["model", "direction", "n_real", "n_fake", "fid_inception", "fid_random_embedding", "note"]

FeatureFn = Callable[[np.ndarray], np.ndarray]


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample covariance (ddof 1, as pytorch-fid) of features [N, D]; N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"expected features [N >= 2, D], got shape {features.shape}")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for covariance matrices S1, S2 (symmetric positive semi-definite).

    Hand-written rather than scipy.linalg.sqrtm(S1 @ S2) as pytorch-fid does: sqrtm of the
    non-symmetric product takes minutes in 2048-D (measured: benchmarks/fid.py), this takes
    seconds. With A = S1^(1/2), S1 S2 = A (A S2 A) A^-1 has the eigenvalues of the symmetric
    A S2 A, so two symmetric eigendecompositions give the trace exactly; eigenvalues that rounding
    makes slightly negative (singular covariances of few samples) are clipped to 0. Tested
    against scipy.linalg.sqrtm and torchmetrics.
    """
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    product = root @ sigma2 @ root
    eigenvalues = np.linalg.eigvalsh((product + product.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance of two Gaussians: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"expected means [D] and covariances [D, D] of one D, got {mu1.shape}, {sigma1.shape}, "
                         f"{mu2.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets [N, D] and [M, D] (sample covariances, ddof 1).

    With fewer samples than dimensions (a test split of ~100 slices, 2048 Inception features)
    the trace term is taken in sample space: for centred X (N x D) and Y (M x D),
    S1 S2 = X'X Y'Y / ((N-1)(M-1)) has the non-zero eigenvalues of B B' with B = X Y', so
    Tr((S1 S2)^(1/2)) is the sum of the singular values of B / sqrt((N-1)(M-1)): an N x M SVD
    instead of two D x D eigendecompositions. Exact; tested against the covariance route.
    """
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    mu1, sigma1 = feature_statistics(real)
    mu2, sigma2 = feature_statistics(fake)
    if min(len(real), len(fake)) >= real.shape[1]:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    x, y = real - mu1, fake - mu2
    scale = np.sqrt((len(real) - 1) * (len(fake) - 1))
    trace_sqrt = np.linalg.svd(x @ y.T, compute_uv=False).sum() / scale
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


@dataclass(frozen=True)
class FidImages:
    """The uint8 slices [N, H, W] compared for one model and direction."""

    model: str
    direction: str
    real: np.ndarray
    fake: np.ndarray


def fid_rows(sets: list[FidImages], inception: FeatureFn | None, inception_note: str,
             embedding: FeatureFn | None, embedding_note: str = "") -> pd.DataFrame:
    """One row per model and direction. ``inception`` and ``embedding`` (images -> features) are
    None when that feature space is unavailable; the note then says why."""
    cache: dict[tuple[str, str, int], np.ndarray] = {}

    def features(space: str, fn: FeatureFn, images: np.ndarray, key: tuple[str, str] | None) -> np.ndarray:
        if key is None:
            return fn(images)
        cache_key = (space, *key)
        if cache_key not in cache:  # the real slices of a direction are shared by every model
            cache[cache_key] = fn(images)
        return cache[cache_key]

    rows = []
    for item in sets:
        notes = []
        row = {"model": item.model, "direction": item.direction, "n_real": len(item.real),
               "n_fake": len(item.fake), "fid_inception": float("nan"), "fid_random_embedding": float("nan")}
        if min(len(item.real), len(item.fake)) < 2:
            notes.append("FID: not computed (fewer than 2 slices)")
        else:
            for column, space, fn, note in (("fid_inception", "inception", inception, inception_note),
                                            ("fid_random_embedding", "embedding", embedding, embedding_note)):
                if fn is None:
                    notes.append(note)
                    continue
                row[column] = fid_from_features(features(space, fn, item.real, (item.direction, "real")),
                                                features(space, fn, item.fake, None))
        row["note"] = "; ".join(n for n in notes if n)
        rows.append(row)
    return pd.DataFrame(rows, columns=FID_COLUMNS)


def not_computed_note(weights: str | Path) -> str:
    """The table's text when the Inception weights are absent (never a number in their place)."""
    return f"FID: not computed (no Inception weights at {weights})"


def load_fid_images(manifest: pd.DataFrame, prediction_dirs: Mapping[str, Path]) -> list[FidImages]:
    """Ground truth and predictions of the test split for each (model, direction).

    ``prediction_dirs`` maps ``"{model}/{direction}"`` to a folder of PNGs named as the ground
    truth they stand for (the predict rule's interface); a missing prediction is an error.
    """
    from mrct.io.png import read_gray_png

    rows = split_rows(manifest, "test")
    real: dict[str, np.ndarray] = {}
    sets = []
    for name, folder in prediction_dirs.items():
        model, direction = name.split("/")
        column = DIRECTIONS[direction].target_column
        if direction not in real:
            real[direction] = np.stack([read_gray_png(p) for p in rows[column]])
        fake = np.stack([read_gray_png(Path(folder) / Path(p).name) for p in rows[column]])
        sets.append(FidImages(model, direction, real[direction], fake))
    return sets


def inception_feature_fn(weights: Path, batch_size: int, device: str, sha256: str | None = None) -> FeatureFn:
    """Features of the official network; a file with another sha256 than the official one is an
    error (its FID would not be the standard FID)."""
    from mrct.io.download import verify_file
    from mrct.models.inception import INCEPTION_SHA256, INCEPTION_URL, inception_features, load_inception

    verify_file(weights, sha256=sha256 or INCEPTION_SHA256, url=INCEPTION_URL)
    net = load_inception(weights, device)
    return lambda images: inception_features(net, images, batch_size, device).numpy()


def random_embedding_feature_fn(batch_size: int, device: str) -> FeatureFn:
    """Features of the fixed random-weight network (:mod:`mrct.models.random_embedding`)."""
    from mrct.models.random_embedding import RandomEmbedding, random_embedding_features

    net = RandomEmbedding()
    return lambda images: random_embedding_features(net, images, batch_size, device)


def fid_table(manifest: pd.DataFrame, prediction_dirs: Mapping[str, Path], inception_weights: Path,
              batch_size: int, device: str, inception_sha256: str | None = None) -> pd.DataFrame:
    """FID per model and direction in both feature spaces (see the module docstring).

    ``inception_weights`` may be absent (the Inception column then says FID was not computed);
    the random-embedding FID is always computed. ``inception_sha256`` replaces the official
    checksum (tests only).
    """
    sets = load_fid_images(manifest, prediction_dirs)
    inception = None
    if Path(inception_weights).is_file():
        inception = inception_feature_fn(Path(inception_weights), batch_size, device, inception_sha256)
    else:
        log.warning("%s", not_computed_note(inception_weights))
    return fid_rows(sets, inception, not_computed_note(inception_weights), random_embedding_feature_fn(batch_size, device))


def ranking_fid(table: pd.DataFrame) -> str:
    """The column that ranks the models: Inception FID when every row has one, else the random embedding."""
    return "fid_inception" if len(table) and table["fid_inception"].notna().all() else "fid_random_embedding"
