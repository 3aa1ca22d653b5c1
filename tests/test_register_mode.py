"""Rule register keeps an MR that is already aligned on the CT grid, and registers any other."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mrct.config import load_config
from mrct.preprocess.masks import mr_head_mask
from mrct.preprocess.register import grid_difference, transform_error
from mrct.preprocess.steps import register_files
from mrct.sources import demo

CONFIG = load_config("config.yaml")
REGISTRATION = CONFIG["preprocess"]["registration"]
HEAD_HU = CONFIG["preprocess"]["head_threshold_hu"]


@pytest.fixture(scope="module")
def aligned_pair():
    """A demo patient without misalignment: its MR is on the CT grid and aligned to it."""
    settings = {**CONFIG["dataset"]["demo"], "max_shift_mm": 0.0, "max_rotation_deg": 0.0}
    model = demo.load_head_model(2)
    patient = demo.make_patient(model, demo.draw_parameters(CONFIG["seed"], "demo001", settings), settings)
    return patient["ct"], patient["mr"]


def _run(tmp_path, ct, mr, **settings):
    paths = {name: tmp_path / f"{name}.nii.gz" for name in ("ct_in", "mr_in", "mr_mask")}
    sitk.WriteImage(ct, str(paths["ct_in"]))
    sitk.WriteImage(sitk.Cast(mr, sitk.sitkFloat32), str(paths["mr_in"]))
    sitk.WriteImage(mr_head_mask(mr), str(paths["mr_mask"]))
    out = {name: str(tmp_path / "out" / f"{name}.nii.gz") for name in ("mr", "ct", "mask", "body_mask")}
    out |= {"transform": str(tmp_path / "out" / "mr_to_ct.tfm"), "qa": str(tmp_path / "out" / "qa.png")}
    register_files(str(paths["mr_in"]), str(paths["mr_mask"]), str(paths["ct_in"]), out,
                   {**REGISTRATION, **settings}, HEAD_HU, CONFIG["seed"], "p")
    return sitk.ReadImage(out["mr"]), sitk.ReadTransform(out["transform"])


def _head_points(ct):
    head = np.argwhere(sitk.GetArrayFromImage(ct) > HEAD_HU)[::50, ::-1]
    return np.array([ct.TransformIndexToPhysicalPoint([int(v) for v in index]) for index in head])


def test_aligned_mr_on_the_ct_grid_is_kept_voxel_for_voxel(tmp_path, aligned_pair):
    ct, mr = aligned_pair
    assert grid_difference(ct, mr) == ""
    out, transform = _run(tmp_path, ct, mr, mode="auto")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(mr).astype(np.float32))
    assert grid_difference(out, ct) == "" and out.GetOrigin() == ct.GetOrigin()
    assert transform_error(transform, sitk.Euler3DTransform(), _head_points(ct))[0] == 0.0


def test_mode_always_resamples_even_an_aligned_mr(tmp_path, aligned_pair):
    ct, mr = aligned_pair
    out, _ = _run(tmp_path, ct, mr, mode="always")
    assert not np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(mr).astype(np.float32))


def test_mr_on_the_ct_grid_but_misaligned_by_a_few_mm_is_registered(tmp_path, aligned_pair):
    ct, mr = aligned_pair
    truth = sitk.Euler3DTransform()
    truth.SetTranslation((3.0, -2.0, 2.0))  # CT point -> MR point: the MR is shifted 4.1 mm
    shifted = sitk.Resample(mr, mr, truth.GetInverse(), sitk.sitkBSpline, 0.0)
    assert grid_difference(ct, shifted) == ""
    out, transform = _run(tmp_path, ct, shifted, mode="auto")
    points = _head_points(ct)
    error_mm, _ = transform_error(transform, truth, points)
    assert transform_error(sitk.Euler3DTransform(), truth, points)[0] > 4.0
    assert error_mm <= 1.0, f"registered {error_mm:.2f} mm from the known shift"
    assert not np.array_equal(sitk.GetArrayFromImage(out), sitk.GetArrayFromImage(shifted))


def test_mr_on_another_grid_is_registered(aligned_pair):
    ct, mr = aligned_pair
    coarse = sitk.Resample(mr, [n // 2 for n in mr.GetSize()], sitk.Transform(), sitk.sitkLinear, mr.GetOrigin(),
                           [2 * s for s in mr.GetSpacing()], mr.GetDirection())
    assert grid_difference(ct, coarse).startswith("size")
