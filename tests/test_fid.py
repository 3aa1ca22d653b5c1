"""FID: the Fréchet distance against closed forms, known shifts, the Inception network and its weights."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FileServer, Route
from PIL import Image

from mrct.io.download import ChecksumError, DownloadError, sha256_of
from mrct.evaluation.fid import (
    FidImages,
    fid_from_features,
    fid_rows,
    fid_table,
    frechet_distance,
    not_computed_note,
    ranking_fid,
    trace_sqrt_product,
)
from mrct.models.inception import FIDInceptionV3, fetch_inception_weights, inception_features, load_inception
from mrct.models.networks import ResnetGenerator
from mrct.models.random_embedding import CHANNELS, FEATURE_DIM, RandomEmbedding, random_embedding_features
from mrct.models.trained import save_trained_generator

# -- the Fréchet distance ---------------------------------------------------------------------


def test_frechet_distance_of_gaussians_closed_form() -> None:
    """Commuting covariances S1 = Q D1 Q', S2 = Q D2 Q': FD = |m1 - m2|^2 + sum (sqrt d1 - sqrt d2)^2."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    d1, d2 = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert frechet_distance(m1, q @ np.diag(d1) @ q.T, m2, q @ np.diag(d2) @ q.T) == pytest.approx(expected)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[1.0]])) == pytest.approx(10)


def test_trace_term_against_scipy_sqrtm() -> None:
    """The eigenvalue route against scipy.linalg.sqrtm of the product (pytorch-fid's way),
    for full-rank covariances and for singular ones (fewer samples than dimensions)."""
    from scipy import linalg

    rng = np.random.default_rng(7)
    for n, d in ((200, 6), (5, 12)):
        a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        expected = np.trace(linalg.sqrtm(s1 @ s2)).real
        assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_sample_space_route_equals_the_covariance_route() -> None:
    """Fewer samples than dimensions: the N x M SVD gives what the D x D route gives."""
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(9, 30)), rng.normal(size=(7, 30)) * 2 + 0.5
    expected = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-6)
    assert fid_from_features(a, a) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_against_torchmetrics() -> None:
    """An independent implementation: torchmetrics computes the trace term from eigenvalues."""
    from torchmetrics.image.fid import _compute_fid as compute_fid
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 1
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    theirs = compute_fid(*(torch.from_numpy(v) for s in stats for v in s))
    assert fid_from_features(a, b) == pytest.approx(float(theirs), rel=1e-6)


def test_sampled_gaussians_approach_the_closed_form() -> None:
    rng = np.random.default_rng(2)
    d, shift, scale = 4, 1.5, 2.0
    real = rng.normal(size=(20000, d))
    fake = rng.normal(loc=shift, scale=scale, size=(20000, d))
    # |m|^2 + Tr(I + s^2 I - 2 s I) = d shift^2 + d (s - 1)^2
    assert fid_from_features(real, fake) == pytest.approx(d * shift**2 + d * (scale - 1) ** 2, rel=0.03)


# -- FID per model with the test's own feature extractor ---------------------------------------


def _linear_features(seed: int = 3, size: int = 8, dim: int = 5):
    weights = np.random.default_rng(seed).normal(size=(size * size, dim))
    return (lambda images: np.asarray(images, dtype=np.float64).reshape(len(images), -1) @ weights), weights


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_a_known_shift() -> None:
    extractor, weights = _linear_features()
    real = np.random.default_rng(4).uniform(0, 200, size=(40, 8, 8))
    shifts = [0.0, 1.0, 2.0, 5.0]
    sets = [FidImages("m", "mr2ct", real, real + c) for c in shifts]
    table = fid_rows(sets, extractor, "unused", extractor, "unused")
    # a constant shift c of every pixel moves every feature by c W'1 and leaves the covariance:
    # FID = |c W'1|^2 exactly
    expected = [c**2 * float(np.sum(weights.sum(axis=0) ** 2)) for c in shifts]
    assert table["fid_inception"].iloc[0] == pytest.approx(0, abs=1e-6)
    assert np.allclose(table["fid_inception"], expected, rtol=1e-6, atol=1e-6)
    assert np.allclose(table["fid_random_embedding"], expected, rtol=1e-6, atol=1e-6)
    assert (table["note"] == "").all()
    assert table["fid_inception"].is_monotonic_increasing


def test_missing_feature_spaces_give_notes_not_numbers() -> None:
    extractor, _ = _linear_features()
    real = np.random.default_rng(5).uniform(0, 200, size=(10, 8, 8))
    note = not_computed_note("resources/inception/x.pth")
    table = fid_rows([FidImages("m", "ct2mr", real, real)], None, note, None, "no embedding")
    assert table["fid_inception"].isna().all() and table["fid_random_embedding"].isna().all()
    assert table["note"].iloc[0] == "FID: not computed (no Inception weights at resources/inception/x.pth); no embedding"
    one = fid_rows([FidImages("m", "ct2mr", real[:1], real[:1])], extractor, note, None, "")
    assert "fewer than 2 slices" in one["note"].iloc[0] and one["fid_inception"].isna().all()


def _write_tiny_study(tmp_path: Path) -> tuple[pd.DataFrame, dict[str, Path]]:
    """A manifest with 4 test slices per modality and one model's predictions of them."""
    rng = np.random.default_rng(6)
    rows, dirs = [], {f"m/{d}": tmp_path / "pred" / d for d in ("mr2ct", "ct2mr")}
    for folder in dirs.values():
        folder.mkdir(parents=True)
    for i in range(4):
        row = {"patient": "p1", "slice": i, "split": "test"}
        for modality in ("mr", "ct"):
            path = tmp_path / modality / f"p1_{i:03d}.png"
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, size=(32, 32), dtype=np.uint8)).save(path)
            row[f"{modality}_png"] = str(path)
        rows.append(row)
        Image.open(row["ct_png"]).save(dirs["m/mr2ct"] / Path(row["ct_png"]).name)
        Image.fromarray(rng.integers(0, 256, size=(32, 32), dtype=np.uint8)).save(dirs["m/ct2mr"] / Path(row["mr_png"]).name)
    return pd.DataFrame(rows), dirs


def test_fid_table_without_inception_weights(tmp_path: Path) -> None:
    """No weights: the Inception column stays empty with the note; the random embedding still works."""
    manifest, dirs = _write_tiny_study(tmp_path)
    weights = tmp_path / "resources" / "inception" / "pt_inception.pth"
    table = fid_table(manifest, dirs, weights, batch_size=2, device="cpu").set_index("direction")
    assert table["fid_inception"].isna().all()
    assert (table["note"] == f"FID: not computed (no Inception weights at {weights})").all()
    # mr2ct predictions are copies of the ground truth: zero distance; ct2mr's are other images
    assert table.loc["mr2ct", "fid_random_embedding"] == pytest.approx(0, abs=1e-6)
    assert table.loc["ct2mr", "fid_random_embedding"] > 1e-6
    assert (table["n_real"] == 4).all() and (table["n_fake"] == 4).all()
    assert ranking_fid(table) == "fid_random_embedding"


# -- the random-embedding feature network --------------------------------------------------------


def test_random_embedding_is_fixed_and_sees_every_stage() -> None:
    """Same weights on every build (fixed seed, whatever the global random state); features are the
    per-channel mean and std of all five stages, so a change that only reaches deep stages shows."""
    torch.manual_seed(123)
    a = RandomEmbedding()
    torch.manual_seed(456)
    b = RandomEmbedding()
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    features = random_embedding_features(a, images, batch_size=2)
    assert features.shape == (3, FEATURE_DIM) and features.dtype == np.float64 and np.isfinite(features).all()
    # 16-bit slices are scaled by their own range: the same image at 16 bits gives nearly the same features
    wide = images.astype(np.uint16) * 257
    np.testing.assert_allclose(random_embedding_features(a, wide, 2), features, rtol=1e-4, atol=1e-5)
    # every stage contributes: its channels' stds are not all zero
    stds, offset = [], 0
    for width in CHANNELS:
        stds.append(features[:, offset + width : offset + 2 * width])
        offset += 2 * width
    assert all((s > 0).any() for s in stds)


def test_random_embedding_fid_is_zero_for_identical_sets_and_grows_with_a_shift() -> None:
    from mrct.evaluation.fid import random_embedding_feature_fn

    features = random_embedding_feature_fn(batch_size=8, device="cpu")
    rng = np.random.default_rng(9)
    real = rng.integers(40, 200, (12, 24, 24)).astype(np.uint8)
    sets = [FidImages("m", "mr2ct", real, (real.astype(int) + c).astype(np.uint8)) for c in (0, 10, 40)]
    fids = fid_rows(sets, None, "no inception", features)["fid_random_embedding"].to_numpy()
    assert fids[0] == pytest.approx(0, abs=1e-8) and 0 < fids[1] < fids[2]


def _tensors(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [t.detach().float().flatten() for t in state.values() if t.is_floating_point() and t.numel() > 1]


def test_the_fid_feature_network_is_no_compared_model(tmp_path: Path) -> None:
    """None of its tensors equals (or has the shape of) a tensor of any generator, trained or pretrained;
    the FID of one model does not change with which other models are compared."""
    from mrct.models.pretrained import load_pretrained_generator, save_pretrained_generator
    from mrct.models.trained import load_trained_generator

    files = []
    torch.manual_seed(0)
    trained = ResnetGenerator(ngf=4, n_blocks=1)
    save_trained_generator(tmp_path / "G_mr2ct.pth", trained, model="scratch", label="scratch", direction="mr2ct",
                           strategy="full", image_size=32)
    files.append(load_trained_generator(tmp_path / "G_mr2ct.pth").state_dict())
    files.append(ResnetGenerator().state_dict())  # the zoo architecture (ngf 64, 9 blocks)
    save_pretrained_generator(tmp_path / "start.pth", ResnetGenerator(ngf=8, n_blocks=2), source="test", extra={})
    files.append(load_pretrained_generator(tmp_path / "start.pth", {"ngf": 8, "n_blocks": 2}).state_dict())
    ours = _tensors(RandomEmbedding().state_dict())
    for state in files:
        for theirs in _tensors(state):
            for tensor in ours:
                assert tensor.shape != theirs.shape or not torch.allclose(tensor, theirs)
    manifest, dirs = _write_tiny_study(tmp_path / "study")
    absent = tmp_path / "none.pth"
    alone = fid_table(manifest, {"m/ct2mr": dirs["m/ct2mr"]}, absent, batch_size=4, device="cpu")
    both = fid_table(manifest, dirs, absent, batch_size=4, device="cpu").set_index("direction")
    assert alone["fid_random_embedding"].iloc[0] == both.loc["ct2mr", "fid_random_embedding"]
    rule = Path("rules/evaluate.smk").read_text(encoding="utf-8").split("rule fid:")[1].split("\nrule ")[0]
    assert "train" not in rule and "pretrained" not in rule


# -- the Inception network and its weight file -----------------------------------------------


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised network saved as a state dict, like the official file (566 tensors)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / "weights.pth"
    torch.save(FIDInceptionV3().state_dict(), path)
    return path


def test_inception_layout_matches_the_official_file(inception_file: Path) -> None:
    """The official pt_inception-2015-12-05 file holds 566 tensors (94 conv+BN blocks of 6, fc weight and bias)."""
    state = torch.load(inception_file, weights_only=True)
    assert len(state) == 566
    assert tuple(state["fc.weight"].shape) == (1008, 2048)
    assert tuple(state["Mixed_7c.branch_pool.conv.weight"].shape) == (192, 2048, 1, 1)
    net = load_inception(inception_file)
    features = inception_features(net, torch.randint(0, 256, (1, 32, 32), dtype=torch.uint8), batch_size=1)
    assert features.shape == (1, 2048) and features.dtype == torch.float64 and torch.isfinite(features).all()


def test_inception_strict_load_names_the_file(inception_file: Path, tmp_path: Path) -> None:
    state = torch.load(inception_file, weights_only=True)
    del state["fc.bias"]
    bad = tmp_path / "partial.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"partial.pth: .*missing keys: fc.bias"):
        load_inception(bad)
    html = tmp_path / "page.pth"
    html.write_text("<html>not found</html>")
    with pytest.raises(ValueError, match=r"page.pth: expected the FID Inception state dict"):
        load_inception(html)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_message_names_the_path(tmp_path: Path) -> None:
    """No server listening on 127.0.0.1: the error says where to place the file by hand."""
    dest = tmp_path / "resources" / "inception" / "pt_inception-2015-12-05-6726825d.pth"
    url = f"http://127.0.0.1:{_free_port()}/pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(DownloadError, match="place it by hand") as error:
        fetch_inception_weights(dest, url=url, retries=1, timeout=2)
    assert str(dest.resolve()) in str(error.value) and "download_inception: false" in str(error.value)
    assert not dest.exists() and not list(dest.parent.glob("*.part"))


def test_download_checks_sha256_then_loads(inception_file: Path, tmp_path: Path, file_server: FileServer) -> None:
    """From a local server: a file with another sha256 is refused and not kept; the pinned one loads."""
    file_server.routes["w.pth"] = Route(inception_file.read_bytes())
    dest = tmp_path / "inception" / "w.pth"
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fetch_inception_weights(dest, url=file_server.url("w.pth"), retries=1)  # the official sha256
    assert not dest.exists()
    fetch_inception_weights(dest, url=file_server.url("w.pth"), sha256=sha256_of(inception_file), retries=1)
    assert sha256_of(dest) == sha256_of(inception_file)
    assert file_server.requests == ["/w.pth", "/w.pth"]


def test_fid_table_with_inception_weights(inception_file: Path, tmp_path: Path, monkeypatch) -> None:
    """With weights: an Inception FID per row (0 for copies of the ground truth); a file that is
    not the official one (sha256) is refused rather than giving a non-standard FID.

    The file is verified and loaded for real; the 299x299 forward passes (seconds each on a busy
    CPU, tested above) are replaced by the mean of 16 image blocks to keep the test fast.
    """
    def block_means(net, images, batch_size, device="cpu"):
        images = torch.as_tensor(images).double()
        return images.reshape(len(images), 4, 8, 4, 8).mean(dim=(2, 4)).flatten(1)

    monkeypatch.setattr("mrct.models.inception.inception_features", block_means)
    manifest, dirs = _write_tiny_study(tmp_path)
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        fid_table(manifest, dirs, inception_file, batch_size=4, device="cpu")
    table = fid_table(manifest, dirs, inception_file, batch_size=4, device="cpu",
                      inception_sha256=sha256_of(inception_file)).set_index("direction")
    assert table.loc["mr2ct", "fid_inception"] == pytest.approx(0, abs=1e-3)
    assert table.loc["ct2mr", "fid_inception"] > 0
    assert table["fid_random_embedding"].notna().all() and (table["note"] == "").all()
    assert ranking_fid(table) == "fid_inception"
