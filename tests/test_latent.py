"""Latent features of the whole generator, patient-grouped separability, the joint embedding."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from PIL import Image
import torch

from mrct.evaluation.latent import (
    STAGES,
    LatentSettings,
    analyse,
    analyse_stages,
    clamped_perplexity,
    extract_features,
    feature_names,
    modality_labels,
    patient_folds,
    plot_embeddings,
    plot_stages,
    pooled_bottleneck,
    random_generators,
    save_latent,
    separability,
    separability_change,
)
from mrct.evaluation.latent_joint import distance_profiles, joint_embedding, joint_points, plot_joint
from mrct.models.networks import ResnetBlock, ResnetGenerator, init_weights


def tiny_generators():
    torch.manual_seed(0)
    return {name: ResnetGenerator(ngf=4, n_blocks=1).eval() for name in ("mr2ct", "ct2mr")}


def random_slices(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size)).astype(np.uint8)


def block_output_by_hook(generator: ResnetGenerator, images: np.ndarray) -> np.ndarray:
    """What the last residual block (or the adapter after it) hands on, caught during a full forward pass."""
    last = generator.adapter if generator.adapter is not None else [m for m in generator.modules() if isinstance(m, ResnetBlock)][-1]
    caught = []
    handle = last.register_forward_hook(lambda module, inputs, output: caught.append(output.detach().numpy().copy()))
    x = torch.from_numpy(images).float()[:, None].div(127.5).sub(1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        generator(x)
    handle.remove()
    return caught[0].astype(np.float64)


@pytest.mark.parametrize("adapter_units", [0, 8])
def test_features_are_mean_and_std_of_the_last_block_output(adapter_units):
    torch.manual_seed(0)
    gen = ResnetGenerator(ngf=4, n_blocks=2, adapter_units=adapter_units).eval()
    if adapter_units:  # move the zero-initialised output layer so the adapter is not the identity
        torch.nn.init.normal_(gen.adapter.fc2.weight, 0.0, 0.5)
    mr, ct = random_slices(3), random_slices(3, seed=1)
    features = extract_features({"mr2ct": gen}, mr, ct, batch_size=2)["mr2ct"]
    assert features.shape == (6, 32) and list(feature_names(16)[[0, 16]]) == ["mean_0", "std_0"]
    block = block_output_by_hook(gen, ct)  # [3, 16, 8, 8]
    expected = np.concatenate([block.mean(axis=(2, 3)), block.std(axis=(2, 3))], axis=1)  # numpy std: ddof 0
    np.testing.assert_allclose(features[3:], expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="as many MR as CT"):
        extract_features({"mr2ct": gen}, mr, ct[:2])


def relative_change(before: np.ndarray, after: np.ndarray) -> float:
    """||C(after) - C(before)|| / ||C(before)||, C centring each feature over the images.

    Centred because the embeddings and the separability scores standardise every feature over the
    images: a change that is the same for every image is invisible to them.
    """
    before, after = before - before.mean(axis=0), after - after.mean(axis=0)
    return float(np.linalg.norm(after - before) / np.linalg.norm(before))


def test_randomising_the_residual_blocks_changes_the_latent_vectors():
    gen = init_weights(ResnetGenerator(ngf=8, n_blocks=2), generator=torch.Generator().manual_seed(0)).eval()
    randomised = copy.deepcopy(gen)
    rng = torch.Generator().manual_seed(1)
    for block in (m for m in randomised.modules() if isinstance(m, ResnetBlock)):
        init_weights(block, generator=rng)
    images = random_slices(8, seed=2)
    x = torch.from_numpy(images).float()[:, None].div(127.5).sub(1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        # The encoder (stem and down-sampling: the modules before the first residual block) is untouched.
        assert torch.equal(gen.model[:10](x), randomised.model[:10](x))
        assert not isinstance(gen.model[9], ResnetBlock) and isinstance(gen.model[10], ResnetBlock)
    before = extract_features({"g": gen}, images, images)["g"]
    after = extract_features({"g": randomised}, images, images)["g"]
    change = relative_change(before, after)
    print(f"relative change of the mean+std features: {change:.3f}")
    assert change > 0.5
    # The old feature, the global average of the bottleneck (the first half: the means), does not
    # move: instance norm zeroes the mean of every residual branch. This is what the test catches.
    old_change = relative_change(before[:, :32], after[:, :32])
    print(f"relative change of the global average alone: {old_change:.2e}")
    assert old_change < 1e-4


def test_the_global_average_of_the_bottleneck_is_the_encoders():
    gen = ResnetGenerator(ngf=4, n_blocks=3).eval()
    images = random_slices(4)
    x = torch.from_numpy(images).float()[:, None].div(127.5).sub(1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        encoder_mean = gen.model[:10](x).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(pooled_bottleneck(gen, images, 2, "cpu"), encoder_mean, atol=1e-5)


def test_perplexity_is_clamped_below_the_sample_count():
    assert clamped_perplexity(30.0, 10) == 3.0 and clamped_perplexity(5.0, 1000) == 5.0
    assert clamped_perplexity(30.0, 2) == 1.0


def test_separability_of_clearly_separated_modalities():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (10, 8)), rng.normal(8, 1, (10, 8))])
    patients = np.tile(np.repeat(["p0", "p1", "p2", "p3", "p4"], 2), 2)
    scores = separability(features, modality_labels(10), patients, knn_k=5, seed=0)
    assert scores["knn_accuracy"] == 1.0 and scores["silhouette"] > 0.7 and scores["cv_folds"] == 5
    mixed = separability(rng.normal(0, 1, (20, 8)), modality_labels(10), patients, knn_k=5, seed=0)
    assert mixed["silhouette"] < 0.2


def duplicated_patients(n_patients: int = 10, n_slices: int = 8, dim: int = 6, seed: int = 0):
    """Features whose modality can be told apart only within a patient.

    Every patient has its own centre and its own random MR/CT offset direction; its slices are
    near-duplicates. A test slice whose patient is in the training folds finds that patient's
    slices of the same modality as nearest neighbours; an unseen patient's offset says nothing.
    """
    rng = np.random.default_rng(seed)
    mr, ct, patients = [], [], []
    for p in range(n_patients):
        centre, offset = rng.normal(0, 10, dim), rng.normal(0, 1, dim)
        mr.append(centre + offset + rng.normal(0, 0.01, (n_slices, dim)))
        ct.append(centre - offset + rng.normal(0, 0.01, (n_slices, dim)))
        patients += [f"p{p}"] * n_slices
    return np.concatenate([*mr, *ct]), modality_labels(n_patients * n_slices), np.array(patients * 2)


def test_patient_grouped_folds_do_not_reward_duplicated_slices():
    features, labels, patients = duplicated_patients()
    slice_level = separability(features, labels, np.arange(len(labels)), knn_k=5, seed=0)
    grouped = separability(features, labels, patients, knn_k=5, seed=0)
    print(f"k-NN accuracy: slice-level folds {slice_level['knn_accuracy']:.3f}, patient folds {grouped['knn_accuracy']:.3f}")
    assert slice_level["knn_accuracy"] == 1.0
    assert grouped["knn_accuracy"] < 0.75 and grouped["cv_groups"] == 10 and grouped["cv_folds"] == 5
    splits = patient_folds(labels, patients, seed=0)
    assert sorted(np.concatenate([test for _, test in splits])) == list(range(len(labels)))  # every row tested once
    assert all(not set(patients[train]) & set(patients[test]) for train, test in splits)


def test_fewer_patients_than_folds():
    features, labels, patients = duplicated_patients(n_patients=3)
    three = separability(features, labels, patients, knn_k=5, seed=0)
    assert three["cv_folds"] == 3 and three["cv_groups"] == 3 and np.isfinite(three["knn_accuracy"])
    one = separability(features, labels, np.full(len(labels), "p0"), knn_k=5, seed=0)
    assert np.isnan(one["knn_accuracy"]) and one["cv_folds"] == 0 and "at least 2" in one["cv_note"]
    with pytest.raises(ValueError, match="one label and one group per row"):
        separability(features, labels, patients[:-1], knn_k=5, seed=0)


@pytest.mark.slow
def test_analyse_is_seeded_and_plots(tmp_path):
    rng = np.random.default_rng(1)
    features = {"mr2ct": rng.normal(0, 1, (8, 6)), "ct2mr": rng.normal(0, 1, (8, 6))}
    features["mr2ct"][4:] += 5
    settings = LatentSettings(seed=3, tsne_perplexity=30.0, umap_n_neighbors=15, knn_k=5)
    patients = np.array(["a", "a", "b", "b"])
    embeddings, table = analyse(features, patients, settings)
    again, _ = analyse(features, patients, settings)
    assert all(np.allclose(embeddings[k], again[k]) for k in embeddings)
    assert embeddings["tsne_mr2ct"].shape == (8, 2) and embeddings["umap_ct2mr"].shape == (8, 2)
    assert list(table["generator"]) == ["mr2ct", "ct2mr"] and (table["perplexity"] < 8).all()
    assert table.loc[0, "knn_accuracy"] == 1.0 and table.loc[0, "cv_folds"] == 2
    fig = plot_embeddings(embeddings, "tsne", 4, "scratch")
    # Every embedded point is drawn, at its coordinates, and the figure is saved.
    assert plotted_points(fig) == 16
    drawn = np.concatenate([c.get_offsets() for ax in fig.axes for c in ax.collections])
    embedded = np.concatenate([embeddings["tsne_mr2ct"], embeddings["tsne_ct2mr"]])
    np.testing.assert_allclose(np.sort(drawn, axis=0), np.sort(embedded, axis=0), rtol=1e-5)
    fig.savefig(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").size[0] > 100


def test_distance_profiles_ignore_how_a_model_orders_and_scales_its_channels():
    features = np.random.default_rng(0).normal(0, 1, (12, 5))
    relabelled = -3.0 * features[:, [4, 2, 0, 1, 3]] + 7.0
    profiles = distance_profiles(features)
    np.testing.assert_allclose(distance_profiles(relabelled), profiles, atol=1e-12)
    assert profiles.shape == (12, 12) and np.allclose(np.diag(profiles), 0)
    assert profiles[~np.eye(12, dtype=bool)].mean() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="identical rows"):
        distance_profiles(np.ones((4, 3)))


def plotted_points(fig) -> int:
    """Points drawn by the scatter plots of a figure (what a size check on the PNG cannot see)."""
    return sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections)


def write_features(path, features: dict[str, np.ndarray], patients: list[str]):
    rows = pd.DataFrame({"patient": patients, "slice": np.arange(len(patients))})
    save_latent(path, rows, {"finetuned": features}, {})
    return path


@pytest.mark.slow  # UMAP's first call compiles with numba (about a minute on a busy CPU)
def test_joint_embedding_has_one_labelled_point_per_model_and_image_and_is_seeded(tmp_path):
    rng = np.random.default_rng(0)
    patients = ["a", "a", "b", "b", "c"]
    files = {}
    for model in ("scratch", "zoo_a", "zoo_b"):
        features = {g: rng.normal(0, 1, (10, 6)) for g in ("mr2ct", "ct2mr")}
        files[model] = write_features(tmp_path / f"{model}_features.npz", features, patients)
    settings = LatentSettings(seed=5, tsne_perplexity=10.0, umap_n_neighbors=10)
    frame = joint_embedding(files, settings)
    assert len(frame) == 2 * 2 * 3 * 10  # generators x methods x models x (MR and CT images)
    for _, part in frame.groupby(["generator", "method"]):
        keys = part[["model", "modality", "patient", "slice"]].drop_duplicates()
        assert len(keys) == len(part) == 30 and set(part["model"]) == set(files)
        assert (part.groupby("model").size() == 10).all() and np.isfinite(part[["x", "y"]]).all().all()
    pd.testing.assert_frame_equal(frame, joint_embedding(files, settings))
    assert not np.allclose(frame["x"], joint_embedding(files, LatentSettings(seed=6))["x"])
    fig = plot_joint(frame, "umap")
    assert plotted_points(fig) == int((frame["method"] == "umap").sum())
    fig.savefig(tmp_path / "joint.png")
    assert Image.open(tmp_path / "joint.png").size[0] > 100


def test_joint_points_put_an_equivalent_model_on_top_of_the_original(tmp_path):
    rng = np.random.default_rng(0)
    patients = ["a", "a", "b", "b"]
    features = {g: rng.normal(0, 1, (8, 6)) for g in ("mr2ct", "ct2mr")}
    permuted = {g: 2.0 * f[:, ::-1] + 1.0 for g, f in features.items()}
    files = {
        "m1": write_features(tmp_path / "m1.npz", features, patients),
        "m2": write_features(tmp_path / "m2.npz", permuted, patients),
    }
    points, labels = joint_points(files, "mr2ct")
    assert points.shape == (16, 8) and list(labels["model"].unique()) == ["m1", "m2"]
    np.testing.assert_allclose(points[:8], points[8:], atol=1e-12)
    files["m3"] = write_features(tmp_path / "m3.npz", features, ["a", "b", "a", "b"])
    with pytest.raises(ValueError, match="same test images"):
        joint_points(files, "mr2ct")


# -- controls: random weights and the start of fine-tuning ---------------------------------------


def test_the_random_control_reads_the_architecture_only():
    """Two differently trained generators of one architecture get the same random control, whose
    weights are neither theirs nor the seeded start of a model that starts at random."""
    from mrct.models.networks import init_weights

    trained_a, trained_b = tiny_generators(), tiny_generators()
    for net in trained_b.values():
        init_weights(net, gain=0.5)
    control_a, control_b = random_generators(trained_a, seed=3), random_generators(trained_b, seed=3)
    scratch_start = init_weights(ResnetGenerator(ngf=4, n_blocks=1), generator=torch.Generator().manual_seed(3))
    for name in ("mr2ct", "ct2mr"):
        state_a, state_b = control_a[name].state_dict(), control_b[name].state_dict()
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
        assert control_a[name].architecture == trained_a[name].architecture
        weight = "model.1.weight"
        assert not torch.equal(state_a[weight], trained_a[name].state_dict()[weight])
        assert not torch.equal(state_a[weight], scratch_start.state_dict()[weight])
    assert not torch.equal(control_a["mr2ct"].state_dict()["model.1.weight"], control_a["ct2mr"].state_dict()["model.1.weight"])


def _quick_embedding(features, neighbours, seed, standardise=True):
    """PCA in place of t-SNE and UMAP (whose first call compiles for a minute): the stages are under test."""
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(features)


def test_every_stage_is_scored_and_saved(tmp_path, monkeypatch):
    monkeypatch.setattr("mrct.evaluation.latent.umap_embedding", _quick_embedding)
    monkeypatch.setattr("mrct.evaluation.latent.tsne_embedding", _quick_embedding)
    finetuned = tiny_generators()
    start = {k: copy.deepcopy(v) for k, v in finetuned.items()}
    for net in finetuned.values():  # "fine-tuning": move the weights
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
    generators = {"random": random_generators(finetuned, seed=0), "pretrained": start, "finetuned": finetuned}
    mr, ct = random_slices(6, seed=1), np.clip(random_slices(6, seed=2).astype(int) // 3 + 160, 0, 255).astype(np.uint8)
    patients = np.array(["a", "a", "b", "b", "c", "c"])
    settings = LatentSettings(seed=1, tsne_perplexity=3.0, umap_n_neighbors=4, knn_k=3)
    features, embeddings, table = analyse_stages(generators, mr, ct, patients, settings)
    assert list(table["stage"]) == [s for s in STAGES for _ in ("mr2ct", "ct2mr")]
    assert list(table.columns[:2]) == ["stage", "generator"] and table["silhouette"].notna().all()
    assert not np.allclose(features["pretrained"]["mr2ct"], features["finetuned"]["mr2ct"])
    assert not np.allclose(features["random"]["mr2ct"], features["finetuned"]["mr2ct"])
    rows = pd.DataFrame({"patient": patients, "slice": np.arange(6)})
    save_latent(tmp_path / "m_features.npz", rows, features, embeddings)
    with np.load(tmp_path / "m_features.npz") as data:
        assert list(data["stages"]) == list(STAGES)
        np.testing.assert_array_equal(data["features_mr2ct"], features["finetuned"]["mr2ct"])
        np.testing.assert_array_equal(data["pretrained_features_ct2mr"], features["pretrained"]["ct2mr"])
        np.testing.assert_array_equal(data["random_tsne_mr2ct"], embeddings["random"]["tsne_mr2ct"])
    fig = plot_stages(embeddings, "tsne", 6, "m")
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="stages"):
        analyse_stages({"trained": finetuned}, mr, ct, patients, settings)


def test_separability_change_is_finetuned_minus_pretrained():
    table = pd.DataFrame([
        {"model": "zoo", "stage": stage, "generator": g, "silhouette": sil, "knn_accuracy": acc}
        for stage, sil, acc in (("random", 0.26, 1.0), ("pretrained", 0.30, 0.9), ("finetuned", 0.10, 0.8))
        for g in ("mr2ct", "ct2mr")
    ])
    change = separability_change(table).set_index(["model", "generator", "score"])
    row = change.loc[("zoo", "mr2ct", "silhouette")]
    assert row["random"] == 0.26 and row["pretrained"] == 0.30 and row["finetuned"] == 0.10
    assert row["change_finetuning"] == pytest.approx(-0.20) and row["finetuned_vs_random"] == pytest.approx(-0.16)
    assert change.loc[("zoo", "ct2mr", "knn_accuracy"), "change_finetuning"] == pytest.approx(-0.1)
    assert len(change) == 4
    with pytest.raises(ValueError, match="stage"):
        separability_change(table.drop(columns="stage"))


def test_the_random_control_of_a_unet_is_a_unet_of_the_same_architecture():
    import torch

    from mrct.models.unet import UnetGenerator

    trained = UnetGenerator(input_nc=3, output_nc=3, num_downs=3, ngf=4)
    control = random_generators({"mr2ct": trained}, seed=0)["mr2ct"]
    assert type(control) is UnetGenerator and control.architecture == trained.architecture
    assert control.state_dict().keys() == trained.state_dict().keys()
    assert not all(torch.equal(a, b) for a, b in zip(control.state_dict().values(), trained.state_dict().values()))
