"""Latent space of the trained generators: bottleneck statistics, t-SNE/UMAP, separability.

Each model has two generators (MR->CT and CT->MR). Every test MR and every test CT slice is passed
through each of them, and the bottleneck the decoder sees (``ResnetGenerator.bottleneck``: the
output of the last residual block, or of the adapter when the model has one) is summarised per
slice by the **per-channel mean and standard deviation** over its spatial positions: a vector of
``2 * C`` features (512 for the zoo's 256 channels), means first. A pix2pix U-Net's bottleneck
(``UnetGenerator.bottleneck``) is its innermost level, the output of the deepest down-convolution
(``8 * ngf`` channels; 1x1 for unet_256 at 256 px, where the standard deviations are 0 and only the
means carry information); its skip connections pass the rest of the image around it.

Why not the plain global average: every residual block returns ``x + IN(conv(...))`` with instance
norm without affine parameters, whose per-channel spatial mean is zero, so the global average after
the residual blocks equals the global average of the encoder output: it ignores the nine residual
blocks (about 10.6 M of the 11.4 M parameters). The residual branches do change the spread of each
channel, so the standard deviation carries the blocks. Why mean and standard deviation rather
than a pooled spatial grid: the channel-wise mean and standard deviation are the statistics that
style transfer (AdaIN) identifies with an image's style, which is what "does the generator still
encode the input modality" asks about; and they do not depend on where the head lies in the
field of view, so slices of different size and position are compared by content, not layout (a
pooled grid also keeps one encoder-only combination per channel: its cell average).

Each generator's features are embedded on their own (the two generators are different networks,
so their spaces are not comparable), coloured by the modality of the input. Separability of the
modalities says how much of the input domain a generator still encodes at its bottleneck:
silhouette score (features standardised, Euclidean) and k-nearest-neighbour modality accuracy
under cross-validation whose folds are grouped by patient (neighbouring slices of one head are
near-duplicates; with slice-level folds a test slice finds its own patient in the training folds).
``mrct.evaluation.latent_joint`` embeds all models together.

Controls. A generator that has never seen a medical image already separates MR-like from CT-like
inputs (the two modalities differ in intensity statistics, which any convolution passes on), so
a raw separability score says nothing about fine-tuning. Every score and embedding is therefore
computed at three **stages** of each model (:data:`STAGES`): ``random``, a generator of the same
architecture with random weights (:func:`random_generators`: the reference initialisation from a
seed of its own, the same for every model of one architecture); ``pretrained``, the start of
fine-tuning (the weights as downloaded, or for a model that starts at random its seeded initial
weights, exactly as training built them); and ``finetuned``, the trained generators. What
fine-tuning did is the change from ``pretrained`` to ``finetuned`` (:func:`separability_change`);
``random`` says how much of a score any network of that shape gives.

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
#: Stages of a model whose latent space is analysed, from the control to the result.
STAGES = ("random", "pretrained", "finetuned")
#: The random control's weights come from ``seed + RANDOM_SEED_OFFSET``, so they differ from the
#: seeded start of a model that starts at random (which uses ``seed`` itself).
RANDOM_SEED_OFFSET = 7919
#: Separability scores compared between stages.
STAGE_SCORES = ("silhouette", "knn_accuracy")


@dataclass(frozen=True)
class LatentSettings:
    """The ``latent`` config section plus the global seed."""

    seed: int
    tsne_perplexity: float = 10.0
    umap_n_neighbors: int = 10
    knn_k: int = 5
    max_slices: int | None = None
    batch_size: int = 8


def bottleneck_statistics(generator: torch.nn.Module, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Per-channel spatial mean and standard deviation of the bottleneck: ``[N, 2C]``, means first.

    ``images`` are uint8 ``[N, H, W]``. The standard deviation is the population one (divisor
    H*W, as instance norm uses). See the module docstring for why these two statistics.
    """
    from mrct.models.networks import to_network_input

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = to_network_input(torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size])))
            features = generator.bottleneck(batch.to(device)).float()
            mean = features.mean(dim=(2, 3))
            std = features.std(dim=(2, 3), correction=0)
            out.append(torch.cat([mean, std], dim=1).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def pooled_bottleneck(generator: torch.nn.Module, images: np.ndarray, batch_size: int, device: str) -> np.ndarray:
    """Global average of the bottleneck per channel, ``[N, C]``: the means of :func:`bottleneck_statistics`.

    Equal to the global average of the encoder output (the residual blocks add zero-mean
    branches), so it is an encoder feature, blind to the residual blocks: kept to show that
    (tests), not used. The latent analysis uses :func:`bottleneck_statistics`.
    """
    statistics = bottleneck_statistics(generator, images, batch_size, device)
    return statistics[:, : statistics.shape[1] // 2]


def feature_names(n_channels: int) -> np.ndarray:
    """Column names of :func:`bottleneck_statistics`: ``mean_0 .. mean_{C-1}, std_0 .. std_{C-1}``."""
    return np.array([f"{stat}_{c}" for stat in ("mean", "std") for c in range(n_channels)])


def extract_features(
    generators: Mapping[str, torch.nn.Module], mr: np.ndarray, ct: np.ndarray, batch_size: int = 8, device: str = "cpu"
) -> dict[str, np.ndarray]:
    """Features of every MR and CT slice through each generator: ``{generator: [2N, 2C]}``.

    Rows are the N MR slices followed by the N CT slices (see :func:`modality_labels`).
    """
    if mr.shape != ct.shape:
        raise ValueError(f"expected as many MR as CT slices of one size, got {mr.shape} and {ct.shape}")
    return {
        name: np.concatenate(
            [bottleneck_statistics(net, mr, batch_size, device), bottleneck_statistics(net, ct, batch_size, device)]
        )
        for name, net in generators.items()
    }


def modality_labels(n_per_modality: int) -> np.ndarray:
    return np.repeat(np.array(MODALITIES), n_per_modality)


def zscore_columns(features: np.ndarray) -> np.ndarray:
    """Each column z-scored over the rows (constant columns left at zero)."""
    std = features.std(axis=0)
    return (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)


def clamped_perplexity(requested: float, n_samples: int) -> float:
    """scikit-learn needs perplexity < n_samples; keep about 3 perplexities of neighbours."""
    return float(max(1.0, min(requested, (n_samples - 1) / 3.0)))


def tsne_embedding(features: np.ndarray, perplexity: float, seed: int, standardise: bool = True) -> np.ndarray:
    """2-D t-SNE (PCA init, seeded); features standardised per column unless told otherwise."""
    from sklearn.manifold import TSNE

    n = len(features)
    tsne = TSNE(n_components=2, perplexity=clamped_perplexity(perplexity, n), init="pca", random_state=seed)
    return tsne.fit_transform(zscore_columns(features) if standardise else features)


def umap_embedding(features: np.ndarray, n_neighbors: int, seed: int, standardise: bool = True) -> np.ndarray:
    """2-D UMAP (seeded); features standardised per column unless told otherwise."""
    import warnings

    import umap
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    k = int(max(2, min(n_neighbors, n - 1)))
    data = zscore_columns(features) if standardise else features
    # The exact neighbours (each point first, at distance 0), as UMAP finds them itself for fewer
    # than 4096 points, from scikit-learn: UMAP's own search is compiled by numba in every new
    # process (about 4 s of each latent job), and these few hundred points need no index.
    distances, indices = NearestNeighbors(n_neighbors=k).fit(data).kneighbors(data)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        random_state=seed,
        n_jobs=1,  # a seed makes UMAP single-threaded anyway; saying so silences its warning
        # Spectral initialisation fails on a handful of points; random is fine there.
        init="spectral" if n > 16 else "random",
        precomputed_knn=(indices, distances, None),
    )
    with warnings.catch_warnings():
        # "not an NNDescent object: transforming new data ... unavailable": nothing new is transformed
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
        return reducer.fit_transform(data)


#: Most cross-validation folds of the k-NN separability score.
MAX_FOLDS = 5


def patient_folds(labels: np.ndarray, groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds in which every group (patient) lies wholly in one test fold.

    Rule for small sets: ``min(5, patients, rows of the rarer label)`` folds; with fewer than two
    patients there is no fold whose test patient is unseen, so the list is empty (the score is
    NaN and the table says why).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    folds = min(MAX_FOLDS, n_groups, int(pd.Series(labels).value_counts().min()))
    if folds < 2:
        return []
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(train, test) for train, test in cv.split(np.zeros(len(labels)), labels, groups) if len(test)]


def separability(
    features: np.ndarray, labels: np.ndarray, groups: np.ndarray, knn_k: int, seed: int
) -> dict[str, float | str]:
    """Silhouette score and k-NN accuracy of the labels, cross-validated with folds grouped by ``groups``.

    ``groups`` is the patient of each row (pass ``np.arange(n)`` for slice-level folds, which
    overstate the accuracy when slices of one patient are alike). k is clamped to the rarer
    label's rows in the smallest training fold.
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    labels, groups = np.asarray(labels), np.asarray(groups)
    if not len(labels) == len(groups) == len(features):
        raise ValueError(f"expected one label and one group per row ({len(features)}), got {len(labels)} and {len(groups)}")
    x = zscore_columns(features)
    splits = patient_folds(labels, groups, seed)
    n_groups = len(np.unique(groups))
    result: dict[str, float | str] = {
        "silhouette": float(silhouette_score(x, labels)), "knn_accuracy": float("nan"), "knn_k": float("nan"),
        "cv_folds": float(len(splits)), "cv_groups": float(n_groups), "cv_note": "",
    }
    if not splits:
        result["cv_note"] = f"k-NN accuracy not computed: {n_groups} patient(s), grouped folds need at least 2"
        return result
    # At most as many neighbours as the rarer label has rows in the smallest training fold, so
    # that either label can win the vote (k = the whole training fold would always pick one).
    k = max(1, min(knn_k, min(int(pd.Series(labels[train]).value_counts().min()) for train, _ in splits)))
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), x, labels, cv=splits)
    result.update(knn_accuracy=float(scores.mean()), knn_k=float(k))
    return result


def analyse(
    features: Mapping[str, np.ndarray], patients: np.ndarray, settings: LatentSettings
) -> tuple[dict, pd.DataFrame]:
    """Embeddings (``{"tsne_mr2ct": [2N, 2], ...}``) and one separability row per generator.

    ``patients`` holds the patient of each of the N test slices (rows are MR then CT slices).
    """
    n_per_modality = len(patients)
    labels = modality_labels(n_per_modality)
    groups = np.concatenate([np.asarray(patients).astype(str)] * 2)
    embeddings, rows = {}, []
    for name, feats in features.items():
        if len(feats) != 2 * n_per_modality:
            raise ValueError(f"latent {name}: expected {2 * n_per_modality} feature rows, got {len(feats)}")
        if len(feats) < 4:
            raise ValueError(f"latent {name}: expected at least 2 slices per modality, got {n_per_modality}")
        embeddings[f"tsne_{name}"] = tsne_embedding(feats, settings.tsne_perplexity, settings.seed)
        embeddings[f"umap_{name}"] = umap_embedding(feats, settings.umap_n_neighbors, settings.seed)
        scores = separability(feats, labels, groups, settings.knn_k, settings.seed)
        if scores["cv_note"]:
            log.warning("latent %s: %s", name, scores["cv_note"])
        rows.append({
            "generator": name, "n_per_modality": n_per_modality, "n_features": feats.shape[1], **scores,
            "perplexity": clamped_perplexity(settings.tsne_perplexity, len(feats)),
            "silhouette_tsne": _silhouette(embeddings[f"tsne_{name}"], labels),
            "silhouette_umap": _silhouette(embeddings[f"umap_{name}"], labels),
        })
    return embeddings, pd.DataFrame(rows)


def random_generators(generators: Mapping[str, torch.nn.Module], seed: int) -> dict[str, torch.nn.Module]:
    """The random control: per direction, a generator of the same architecture as the given one,
    with the reference initialisation (conv weights ~ N(0, 0.02), biases 0; an adapter starts as
    the identity) drawn in turn from one generator seeded with ``seed + RANDOM_SEED_OFFSET``.

    Only the architectures are read, never the weights, so every model of one architecture gets
    the same control.
    """
    from mrct.models.generators import build_generator, generator_kind
    from mrct.models.networks import init_weights

    gen = torch.Generator().manual_seed(seed + RANDOM_SEED_OFFSET)
    out = {}
    for name, net in generators.items():
        device = next(net.parameters()).device
        # ResNet or U-Net: the control has the class and architecture of the generator it stands beside.
        control = build_generator(generator_kind(net), net.architecture)
        out[name] = init_weights(control, generator=gen).to(device).eval()
    return out


def analyse_stages(
    generators: Mapping[str, Mapping[str, torch.nn.Module]], mr: np.ndarray, ct: np.ndarray, patients: np.ndarray,
    settings: LatentSettings, device: str = "cpu",
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict], pd.DataFrame]:
    """Features, embeddings and separability of every stage: ``generators`` is ``{stage: {direction: net}}``.

    Returns ``{stage: features}``, ``{stage: embeddings}`` and one table with a ``stage`` column
    (stages in :data:`STAGES` order, then directions).
    """
    unknown = sorted(set(generators) - set(STAGES))
    if unknown:
        raise ValueError(f"latent stages: expected some of {STAGES}, got {unknown}")
    features, embeddings, tables = {}, {}, []
    for stage in (s for s in STAGES if s in generators):
        features[stage] = extract_features(generators[stage], mr, ct, settings.batch_size, device)
        embeddings[stage], table = analyse(features[stage], patients, settings)
        tables.append(table.assign(stage=stage))
    table = pd.concat(tables, ignore_index=True)
    return features, embeddings, table[["stage", *[c for c in table.columns if c != "stage"]]]


def separability_change(table: pd.DataFrame) -> pd.DataFrame:
    """One row per model, generator and score: its value at each stage and what fine-tuning changed
    (``finetuned - pretrained``); ``finetuned - random`` says how far the result is from a network
    that never learnt anything."""
    missing = [c for c in ("model", "stage", "generator", *STAGE_SCORES) if c not in table.columns]
    if missing:
        raise ValueError(f"separability table: expected columns model, stage, generator, {list(STAGE_SCORES)}; "
                         f"missing {missing}")
    long = table.melt(id_vars=["model", "stage", "generator"], value_vars=list(STAGE_SCORES), var_name="score")
    wide = long.pivot_table(index=["model", "generator", "score"], columns="stage", values="value",
                            aggfunc="first", dropna=False, sort=False)
    wide = wide.reindex(columns=[s for s in STAGES if s in wide.columns])
    for stage in STAGES:
        if stage not in wide.columns:
            wide[stage] = np.nan
    wide["change_finetuning"] = wide["finetuned"] - wide["pretrained"]
    wide["finetuned_vs_random"] = wide["finetuned"] - wide["random"]
    wide.columns.name = None
    return wide.reset_index()


def stage_key(stage: str, key: str) -> str:
    """Name of an array of a stage in the features file: the fine-tuned stage keeps the plain name
    (``features_mr2ct``, ``tsne_mr2ct``: what the joint embedding and the grid read); the controls
    are prefixed (``pretrained_features_mr2ct``, ``random_tsne_ct2mr``)."""
    if stage not in STAGES:
        raise ValueError(f"latent stage: expected one of {STAGES}, got {stage!r}")
    return key if stage == "finetuned" else f"{stage}_{key}"


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


def plot_stages(embeddings: Mapping[str, Mapping[str, np.ndarray]], method: str, n_per_modality: int, title: str):
    """One row per stage (random, pretrained, fine-tuned), one panel per generator."""
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if s in embeddings]
    fig, axes = plt.subplots(len(stages), len(GENERATORS), figsize=(4.2 * len(GENERATORS), 4 * len(stages)),
                             squeeze=False)
    for row_axes, stage in zip(axes, stages, strict=True):
        plot_embeddings(embeddings[stage], method, n_per_modality, f"{title} {stage}", axes=row_axes)
    fig.tight_layout()
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


def save_latent(path, rows: pd.DataFrame, features: Mapping[str, Mapping[str, np.ndarray]],
                embeddings: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Features and embeddings of every stage, and the slice ids, in one .npz (written atomically).

    ``features`` and ``embeddings`` are ``{stage: {name: array}}``; arrays are named by
    :func:`stage_key` (``features_{generator}`` of the fine-tuned stage, ``pretrained_features_...``
    and ``random_features_...`` of the controls). A features array is ``[2N, 2C]`` (rows: MR slices
    then CT slices; columns named by ``feature_names``); ``modality``, ``patient`` and ``slice``
    label the rows; ``stages`` lists the stages present.
    """
    from mrct.io.atomic import atomic_path

    n = len(rows)
    arrays = {}
    for stage, stage_features in features.items():
        arrays.update({stage_key(stage, f"features_{k}"): v for k, v in stage_features.items()})
    for stage, stage_embeddings in embeddings.items():
        arrays.update({stage_key(stage, k): v for k, v in stage_embeddings.items()})
    first = next(iter(next(iter(features.values())).values()))
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            modality=modality_labels(n),
            # A fixed-width string array, not pandas' object array (which needs pickle to load).
            patient=np.concatenate([rows["patient"].to_numpy(dtype=str)] * 2),
            slice=np.concatenate([rows["slice"].to_numpy()] * 2),
            feature_names=feature_names(first.shape[1] // 2),
            stages=np.array([s for s in STAGES if s in features]),
            **arrays,
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
