"""HU metrics on whole float volumes as SynthRAD2023 defines them, the body mask, and the sCT path.

The reference below is written from the definitions of SynthRAD2023's evaluation code
(github.com/SynthRAD2023/metrics, functions/image_metrics.py), not from mrct's code: weighted sums
instead of boolean indexing, and SSIM computed by hand from local means with scipy's uniform filter
(what scikit-image's default SSIM does) instead of calling scikit-image.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage
from test_predict import write_generator
from test_translate import assert_same_grid
from tiny_slices import write_tiny_dataset

from mrct.config import load_config
from mrct.evaluation.hu_metrics import hu_metrics, volume_hu_metrics
from mrct.evaluation.volumes import (
    check_test_patients,
    evaluate_volumes,
    patient_volume_metrics,
    summarize_volumes,
    volumes_markdown,
)
from mrct.inference.translate import translate_volume
from mrct.preprocess.masks import body_mask
from mrct.slices.geometry import from_uint8, to_uint8
from mrct.slices.manifest import read_manifest
from mrct.sources import demo

LO, HI = -1024.0, 3000.0
CLIP = [LO, HI]
TISSUE_HU = load_config("config.yaml")["evaluate"]["tissue_hu"]


def synthrad_reference(gt: np.ndarray, pred: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """SynthRAD2023's MAE, PSNR and SSIM, straight from the definitions."""
    weight = (mask > 0).astype(np.float64)
    n = weight.sum()
    mae = float(np.sum(np.abs(gt * weight - pred * weight)) / n)
    gt_c, pred_c = np.minimum(np.maximum(gt, LO), HI), np.minimum(np.maximum(pred, LO), HI)
    mse = float(np.sum(weight * (gt_c - pred_c) ** 2) / n)
    psnr = 20 * math.log10(HI - LO) - 10 * math.log10(mse)
    # SSIM: background -1024, shift to start at 0, 7-wide uniform window, sample covariance.
    x = np.where(weight > 0, gt_c, LO) - LO
    y = np.where(weight > 0, pred_c, LO) - LO
    win, L = 7, HI - LO
    n_win = win**x.ndim
    local = lambda a: ndimage.uniform_filter(a, size=win, mode="reflect")  # noqa: E731
    mx, my = local(x), local(y)
    unbias = n_win / (n_win - 1)
    vx = unbias * (local(x * x) - mx * mx)
    vy = unbias * (local(y * y) - my * my)
    cxy = unbias * (local(x * y) - mx * my)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ssim_map = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    inner = (slice(3, -3),) * x.ndim
    ssim = float(np.sum(ssim_map[inner] * weight[inner]) / np.sum(weight[inner]))
    return {"mae_hu": mae, "psnr_hu": psnr, "ssim_hu": ssim}


@pytest.fixture(scope="module")
def demo_pair():
    """A demo patient's CT (2 mm, HU; 24 axial slices through the head) and a plausible sCT:
    blurred, noisy, with a bone bias and a one-voxel shift."""
    settings = dict(load_config("config.yaml")["dataset"]["demo"], resolution_mm=2)
    patient = demo.make_patient(demo.load_head_model(2), demo.draw_parameters(42, "demo001", settings), settings)
    ct = sitk.GetArrayFromImage(patient["ct"]).astype(np.float64)
    mask = sitk.GetArrayFromImage(body_mask(patient["ct"])) > 0
    z = ct.shape[0] // 2
    ct, mask = ct[z - 12 : z + 12], mask[z - 12 : z + 12]
    rng = np.random.default_rng(0)
    sct = ndimage.gaussian_filter(ct, 1.0) + rng.normal(0, 25, ct.shape) + 80.0 * (ct > 500)
    sct = np.roll(sct, 1, axis=2)
    return ct, sct, mask


def test_volume_metrics_equal_an_independent_synthrad_implementation(demo_pair):
    ct, sct, mask = demo_pair
    assert mask.mean() > 0.3 and not mask.all()  # a head with air around it
    got = volume_hu_metrics(sct, ct, mask, CLIP)
    expected = synthrad_reference(ct, sct, mask)
    print({k: round(v, 6) for k, v in got.items()})
    for key in expected:
        assert got[key] == pytest.approx(expected[key], rel=1e-6), key
    assert 20 < got["mae_hu"] < 400 and 15 < got["psnr_hu"] < 40 and 0.3 < got["ssim_hu"] < 0.99


def test_background_outside_the_mask_does_not_count(demo_pair):
    ct, sct, mask = demo_pair
    base = volume_hu_metrics(sct, ct, mask, CLIP)
    # Junk far outside the mask (more than the 7-voxel window away) changes nothing: SSIM sets
    # the background to -1024 in both images, MAE and PSNR only read mask voxels.
    far = ndimage.binary_dilation(mask, iterations=4)
    junk = np.where(far, sct, 2500.0)
    assert volume_hu_metrics(junk, ct, mask, CLIP) == pytest.approx(base, rel=1e-12)


def test_the_ssim_crop_is_three_voxels_at_every_face():
    # Error only in the outermost 3 axial slices of a fully masked volume: outside the crop.
    rng = np.random.default_rng(1)
    ct = rng.normal(0, 300, (16, 20, 20))
    sct = ct.copy()
    sct[:3] += 400.0
    values = hu_metrics(sct, ct, np.ones(ct.shape, bool), CLIP)
    assert values["hu_mae"] == pytest.approx(400.0 * 3 / 16)
    assert values["hu_psnr"] < 30  # the error counts for PSNR
    # SSIM's map sees the error 3 voxels deep (7-wide window), i.e. up to slice 5 < the crop at 3.
    # So it drops, but the first 3 slices themselves are cropped: equal to the reference.
    assert values["hu_ssim"] == pytest.approx(synthrad_reference(ct, sct, np.ones(ct.shape))["ssim_hu"], rel=1e-9)


def test_bone_above_2000_hu_is_counted(demo_pair):
    ct, _, mask = demo_pair
    bone = (ct > 800) & mask
    assert bone.sum() > 100
    truth = ct.copy()
    truth[bone] = 2200.0 + 700.0 * (ct[bone] - 800.0) / (ct[bone].max() - 800.0)  # dense bone, 2200..2900 HU
    capped = np.minimum(truth, 2000.0)  # the best a generator bounded by a 2000 HU window can do
    perfect = volume_hu_metrics(truth, truth, mask, CLIP)
    missed = volume_hu_metrics(capped, truth, mask, CLIP)
    assert perfect["mae_hu"] == 0 and perfect["psnr_hu"] == math.inf and perfect["ssim_hu"] == pytest.approx(1.0)
    assert missed["mae_hu"] == pytest.approx((truth - capped)[mask].sum() / mask.sum(), rel=1e-12)
    assert missed["mae_hu"] > 5 and math.isfinite(missed["psnr_hu"]) and missed["ssim_hu"] < 0.999
    # An error between 2000 and 3000 HU moves PSNR and SSIM; one above the 3000 clip moves MAE only.
    inside = truth + np.where(bone, 300.0, 0.0)
    high = np.where(bone, 3100.0, truth), np.where(bone, 3800.0, truth)
    moved = volume_hu_metrics(inside, truth, mask, CLIP)
    assert moved["psnr_hu"] < 60 and moved["ssim_hu"] < 0.999
    beyond = volume_hu_metrics(high[1], high[0], mask, CLIP)
    assert beyond["mae_hu"] == pytest.approx(700.0 * bone.sum() / mask.sum())
    assert beyond["psnr_hu"] == math.inf and beyond["ssim_hu"] == pytest.approx(1.0)
    # The old path (8-bit PNGs windowed to [-1024, 2000]) could not see the missed bone at all.
    old = [from_uint8(to_uint8(v, -1024, 2000), -1024, 2000) for v in (capped, truth)]
    assert np.array_equal(old[0][bone], old[1][bone])
    new = [from_uint8(to_uint8(v, LO, HI), LO, HI) for v in (capped, truth)]
    assert np.abs(new[0][bone] - new[1][bone]).mean() > 150


def test_hu_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="one shape"):
        hu_metrics(np.zeros((8, 8, 8)), np.zeros((8, 8, 9)), np.ones((8, 8, 8)), CLIP)
    with pytest.raises(ValueError, match="every side >= 7"):
        hu_metrics(np.zeros((3, 8, 8)), np.zeros((3, 8, 8)), np.ones((3, 8, 8)), CLIP)
    with pytest.raises(ValueError, match="3-D"):
        volume_hu_metrics(np.zeros((8, 8)), np.zeros((8, 8)), np.ones((8, 8)), CLIP)
    assert math.isnan(hu_metrics(np.zeros((8, 8)), np.zeros((8, 8)), np.zeros((8, 8)), CLIP)["hu_ssim"])


# -- body mask ---------------------------------------------------------------------------------


def _image(array: np.ndarray, spacing=(2.0, 2.0, 2.5), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-30.0, 12.0, 5.0))
    if direction is not None:
        image.SetDirection(direction)
    return image


def _shell(shape=(24, 40, 36), closed=True):
    """A skull-like shell of bone (1200 HU) with air (-1000 HU) inside and outside.

    ``closed``: an ellipsoid; else an elliptical cylinder cut open by the first and last slices
    (a head cut by the field of view), whose inside air touches the volume's faces.
    """
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r = np.sqrt((yy / 0.8) ** 2 + (xx / 0.75) ** 2 + ((zz / 0.85) ** 2 if closed else 0))
    outline = r < 1
    ct = np.where(outline & (r > 0.8), 1200.0, -1000.0)
    return ct, outline


@pytest.mark.parametrize("closed", [True, False])
def test_body_mask_is_the_filled_outline_of_a_hollow_head(closed):
    ct, outline = _shell(closed=closed)
    assert (ct[outline] == -1000).mean() > 0.3  # much air inside the outline
    mask = sitk.GetArrayFromImage(body_mask(_image(ct), -500.0)) > 0
    inside_air = outline & (ct == -1000)
    assert mask[inside_air].all()
    assert mask[~outline].mean() < 0.01 and mask[outline].all()


def test_body_mask_keeps_the_largest_component():
    ct, outline = _shell()
    ct[0:2, 0:3, 0:3] = 500.0  # a speck of couch in a corner
    mask = sitk.GetArrayFromImage(body_mask(_image(ct), -500.0)) > 0
    assert not mask[0:2, 0:3, 0:3].any() and mask[outline].all()


def test_synthrad_mask_is_preferred_and_put_on_the_ct_grid():
    ct, outline = _shell()
    ct_image = _image(ct)
    # The challenge's mask: a box unlike the outline, stored in the other voxel order (x flipped).
    box = np.zeros(ct.shape, np.uint8)
    box[5:15, 10:30, 8:20] = 1
    stored = sitk.GetImageFromArray(box[:, :, ::-1].copy())
    stored.SetSpacing(ct_image.GetSpacing())
    stored.SetDirection((-1, 0, 0, 0, 1, 0, 0, 0, 1))
    last_x = ct_image.TransformIndexToPhysicalPoint((ct.shape[2] - 1, 0, 0))
    stored.SetOrigin(last_x)
    mask = body_mask(ct_image, -500.0, evaluation_mask=stored)
    assert mask.GetSize() == ct_image.GetSize() and mask.GetOrigin() == ct_image.GetOrigin()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), box)
    elsewhere = sitk.GetImageFromArray(box)
    elsewhere.SetOrigin((500.0, 500.0, 500.0))
    with pytest.raises(ValueError, match="evaluation mask"):
        body_mask(ct_image, -500.0, evaluation_mask=elsewhere)


def test_register_files_writes_the_body_mask(tmp_path):
    from mrct.preprocess.steps import register_files

    ct, outline = _shell(shape=(20, 32, 30))
    ct_image = _image(np.where(outline & (ct < 0), 30.0, ct), spacing=(4.0, 4.0, 4.0))
    mr_image = _image(np.where(outline, 500.0 - 0.3 * (ct > 0) * 400, 0.0), spacing=(4.0, 4.0, 4.0))
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("ct_in", "mr_in", "mr_mask", "synthrad")}
    sitk.WriteImage(ct_image, str(paths["ct_in"]))
    sitk.WriteImage(mr_image, str(paths["mr_in"]))
    sitk.WriteImage(sitk.Cast(mr_image > 100, sitk.sitkUInt8), str(paths["mr_mask"]))
    box = np.zeros(ct.shape, np.uint8)
    box[4:16, 6:26, 6:24] = 1
    synthrad = sitk.GetImageFromArray(box)
    synthrad.CopyInformation(ct_image)
    sitk.WriteImage(synthrad, str(paths["synthrad"]))
    settings = dict(load_config("config.yaml")["preprocess"]["registration"], iterations=5, metric_samples=2000)
    for evaluation_mask, expected in ((None, outline), (paths["synthrad"], box > 0)):
        out = {name: str(tmp_path / "out" / f"{name}.nii.gz") for name in ("mr", "ct", "mask", "body_mask")}
        out.update(transform=str(tmp_path / "out/t.tfm"), qa=str(tmp_path / "out/qa.png"))
        register_files(str(paths["mr_in"]), str(paths["mr_mask"]), str(paths["ct_in"]), out, settings, -500.0, 0, "p",
                       evaluation_mask_path=None if evaluation_mask is None else str(evaluation_mask))
        written = sitk.ReadImage(out["body_mask"])
        assert written.GetSize() == ct_image.GetSize()
        np.testing.assert_array_equal(sitk.GetArrayFromImage(written) > 0, expected)


# -- translation and volume metrics ------------------------------------------------------------


def test_translation_and_volume_metrics_on_a_tiny_generator(tmp_path):
    """mr -> sCT on the CT grid (same geometry), then the volume metrics of that file."""
    write_generator(tmp_path / "model/G_mr2ct.pth", "mr2ct")
    manifest_path = write_tiny_dataset(tmp_path, {"p01": "train", "p02": "train", "p03": "test"}, n_slices=1)
    manifest = read_manifest(manifest_path)
    manifest["ct_hi_hu"] = HI  # the new default window
    manifest.to_csv(manifest_path, index=False)
    ct_array, outline = _shell(shape=(9, 20, 18))
    ct_array = np.where(outline & (ct_array < 0), 35.0, ct_array)
    direction = (-1, 0, 0, 0, -1, 0, 0, 0, 1)
    ct = _image(ct_array, spacing=(0.9, 1.1, 2.5), direction=direction)
    mr = _image(np.where(outline, 600.0 - 0.4 * (ct_array > 500) * 500, 3.0), spacing=(0.9, 1.1, 2.5), direction=direction)
    paths = {name: tmp_path / "preprocessed/p03" / f"{name}.nii.gz" for name in ("ct", "mr", "body_mask")}
    paths["ct"].parent.mkdir(parents=True)
    sitk.WriteImage(ct, str(paths["ct"]))
    sitk.WriteImage(mr, str(paths["mr"]))
    sitk.WriteImage(body_mask(ct, -500.0), str(paths["body_mask"]))
    sct_path = tmp_path / "translations/scratch/p03/sct.nii.gz"
    translate_volume(tmp_path / "model", "mr2ct", paths["mr"], sct_path, manifest=manifest_path, patient="p03")
    sct = sitk.ReadImage(str(sct_path))
    assert_same_grid(sct, ct)
    values = sitk.GetArrayFromImage(sct)
    assert values.min() >= LO and values.max() <= HI and values.std() > 0
    table = evaluate_volumes("scratch", ["p03"], [sct_path], [paths["ct"]], [paths["body_mask"]], CLIP, TISSUE_HU)
    assert list(table.columns[:6]) == ["model", "patient", "mae_hu", "psnr_hu", "ssim_hu", "ms_ssim_hu"]
    assert {"dice_air", "dice_soft", "dice_bone", "hd95_air_mm", "hd95_soft_mm", "hd95_bone_mm"} <= set(table.columns)
    row = table.iloc[0]
    expected = synthrad_reference(ct_array, values.astype(np.float64), outline)
    for key in ("mae_hu", "psnr_hu", "ssim_hu"):
        assert row[key] == pytest.approx(expected[key], rel=1e-6)
    assert row["n_voxels"] == outline.sum()
    check_test_patients(["p03"], manifest)
    with pytest.raises(ValueError, match="test patients"):
        check_test_patients(["p02", "p03"], manifest)
    # An sCT on another grid is an error naming the file.
    moved = sitk.Image(sct)
    moved.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(moved, str(tmp_path / "moved.nii.gz"))
    with pytest.raises(ValueError, match="moved.nii.gz.*origin"):
        patient_volume_metrics(tmp_path / "moved.nii.gz", paths["ct"], paths["body_mask"], CLIP, TISSUE_HU)


def test_summary_over_patients():
    volumes = pd.DataFrame([
        {"model": m, "patient": p, "mae_hu": mae, "psnr_hu": 25.0 + i, "ssim_hu": 0.8, "ms_ssim_hu": 0.9,
         **{f"dice_{c}": 0.7 for c in ("air", "soft", "bone")}, **{f"hd95_{c}_mm": 2.0 for c in ("air", "soft", "bone")},
         "n_voxels": 10}
        for i, (m, p, mae) in enumerate([("scratch", "a", 100.0), ("scratch", "b", 120.0),
                                          ("skimage_photos", "a", 90.0), ("skimage_photos", "b", 96.0)])
    ])
    table = summarize_volumes(volumes, ["scratch", "skimage_photos"])
    assert list(table["model"]) == ["scratch", "skimage_photos"] and list(table["n_patients"]) == [2, 2]
    assert table.loc[0, "mae_hu_mean"] == 110.0 and table.loc[0, "mae_hu_std"] == pytest.approx(np.std([100, 120], ddof=1))
    md = volumes_markdown(table)
    assert "**93.0 ± 4.2**" in md and "| scratch |" in md
    with pytest.raises(ValueError, match="style_monet"):
        summarize_volumes(volumes, ["style_monet"])


def test_ssim_on_the_mask_box_equals_the_whole_array():
    # A small head far from the faces of a large field of view (the map is computed on its box
    # only) and one touching two faces (the box is clamped there): both equal the whole-array
    # reference computation.
    rng = np.random.default_rng(3)
    ct = rng.normal(0, 400, (30, 60, 50))
    sct = ct + rng.normal(0, 80, ct.shape)
    for region in [(slice(9, 17), slice(20, 33), slice(12, 30)), (slice(0, 12), slice(40, 60), slice(5, 20))]:
        mask = np.zeros(ct.shape, bool)
        mask[region] = True
        got = hu_metrics(sct, ct, mask, CLIP)["hu_ssim"]
        assert got == pytest.approx(synthrad_reference(ct, sct, mask)["ssim_hu"], rel=1e-9)
