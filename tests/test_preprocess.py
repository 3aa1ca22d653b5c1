"""Bias correction and registration recover what the demo generator put in."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from mrct.config import load_config
from mrct.preprocess.bias import correct_bias, n3_fit_mask
from mrct.preprocess.masks import ct_head_mask, mr_head_mask
from mrct.preprocess.register import register, transform_error
from mrct.sources import demo

import real_head as real_head_module

CONFIG = load_config("config.yaml")
SETTINGS = dict(CONFIG["dataset"]["demo"])


@pytest.fixture(scope="module")
def template():
    return demo.load_head_model(2)


@pytest.fixture(scope="module")
def template_1mm():
    return demo.load_head_model(1)


def _patient(template, patient="demo001", **overrides):
    settings = {**SETTINGS, **overrides}
    params = demo.draw_parameters(CONFIG["seed"], patient, settings)
    patient = demo.make_patient(template, params, settings)
    return patient, sitk.GetArrayFromImage(patient["mr_brain"]) > 0


def _log_std(values):
    logs = np.log(values)
    return float((logs - logs.mean()).std())


def _bias_residual(patient, brain, method):
    """Applied log-field std inside the brain and what is left of it after correction."""
    settings = CONFIG["preprocess"][method]
    corrected, field = correct_bias(patient["mr"], mr_head_mask(patient["mr"]), method, settings)
    assert corrected.GetSize() == patient["mr"].GetSize()
    truth = sitk.GetArrayFromImage(patient["bias_field"])[brain]
    estimate = sitk.GetArrayFromImage(field)[brain]
    return _log_std(truth), _log_std(truth / estimate)


@pytest.mark.slow  # two 1 mm heads through N4: about 15 s each on 2 free cores
@pytest.mark.parametrize("patient_id", ["demo001", "demo002"])
def test_n4_removes_at_least_half_of_the_known_field(template_1mm, patient_id):
    # At 1 mm, as real scans and the preprocessing benchmark; misaligned MR, Rician noise 2 %.
    # Measured (demo001-010): 0.14-0.48 of the applied field remains, demo001 and 002 the most.
    # The 2 mm demo template is blurrier and N4 leaves more there (up to 0.67).
    patient, brain = _patient(template_1mm, patient_id, resolution_mm=1)
    applied, residual = _bias_residual(patient, brain, "n4")
    print(f"n4 {patient_id}: applied log-field std {applied:.4f}, residual {residual:.4f}")
    assert applied > 0.03
    assert residual <= 0.5 * applied


@pytest.mark.xfail(strict=True, reason="N3 with the settings that correct real scans leaves the whole "
                   "field on the synthetic demo head (1.05 at 2 mm, 1.00 at 1 mm; docs/study.md, N3)")
def test_n3_reduces_the_known_field_on_the_demo(template):
    # Kept, strict, so that a change which makes N3 work on the demo is seen. The demo's head is
    # an average of 152 brains inside a modelled scalp and skull; N4 corrects it, N3 does not.
    patient, brain = _patient(template)
    applied, residual = _bias_residual(patient, brain, "n3")
    print(f"n3 (demo, 2 mm): applied log-field std {applied:.4f}, residual {residual:.4f}")
    assert residual < applied


@pytest.fixture(scope="module")
def real_head():
    return real_head_module.load_real_head()


@pytest.mark.slow  # the real 1 mm head through N3 twice: about 20 s each on 2 free cores
@pytest.mark.parametrize("field_of", ["demo001", "demo002"])
def test_n3_removes_at_least_half_of_a_known_field_on_a_real_head(real_head, field_of):
    # A real single-subject head MR at 1 mm (pycortex's S1) times the demo's field for
    # ``field_of``, with Rician noise (tests/real_head.py). Measured with config.yaml's N3
    # settings: 0.47 (demo001) and 0.35 (demo002) of the field left; 0.99 with the previous
    # 200 mm / 2-level mesh; N4 leaves 0.64 and 0.47 on the same images.
    mr, field = real_head_module.biased_real_head(real_head, field_of, CONFIG["seed"], SETTINGS)
    brain = real_head_module.brain_proxy(real_head)
    _, estimate = correct_bias(mr, mr_head_mask(mr), "n3", CONFIG["preprocess"]["n3"])
    applied = _log_std(field[brain])
    residual = _log_std(field[brain] / sitk.GetArrayFromImage(estimate)[brain])
    print(f"n3 (real head, 1 mm, field of {field_of}): applied log-field std {applied:.4f}, "
          f"residual {residual:.4f} = {residual / applied:.2f} of it")
    assert applied > 0.03
    assert residual <= 0.5 * applied


def test_bias_and_registration_results_do_not_depend_on_the_thread_count(template, tmp_path):
    patient, _ = _patient(template)
    ct, mr = patient["ct"], patient["mr"]
    ct_mask, mr_mask = ct_head_mask(ct), mr_head_mask(mr)
    fields, transforms = [], []
    n4, registration = CONFIG["preprocess"]["n4"], CONFIG["preprocess"]["registration"]
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        for threads in (1, 3, 3):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            fields.append(sitk.GetArrayFromImage(correct_bias(mr, mr_mask, "n4", n4)[1]))
            transforms.append(register(ct, mr, ct_mask, mr_mask, registration, 0, tmp_path).GetParameters())
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    for field, transform in zip(fields[1:], transforms[1:], strict=True):
        np.testing.assert_array_equal(field, fields[0])
        assert transform == transforms[0]


def test_no_correction_is_identity(template):
    patient, _ = _patient(template)
    corrected, field = correct_bias(patient["mr"], mr_head_mask(patient["mr"]), "none", {})
    np.testing.assert_array_equal(sitk.GetArrayFromImage(corrected), sitk.GetArrayFromImage(patient["mr"]))
    assert np.all(sitk.GetArrayFromImage(field) == 1)


def test_unknown_bias_method_is_rejected(template):
    patient, _ = _patient(template)
    with pytest.raises(ValueError, match="bias_correction must be one of"):
        correct_bias(patient["mr"], mr_head_mask(patient["mr"]), "n5", {})


def test_registration_recovers_known_transform(template, tmp_path):
    patient, _ = _patient(template)
    ct, mr = patient["ct"], patient["mr"]
    ct_mask = ct_head_mask(ct)
    transform = register(ct, mr, ct_mask, mr_head_mask(mr), CONFIG["preprocess"]["registration"], 0, tmp_path)
    head = np.argwhere(sitk.GetArrayFromImage(ct_mask) > 0)[::20, ::-1]
    points = np.array([ct.TransformIndexToPhysicalPoint([int(v) for v in index]) for index in head])
    displacement_mm, angle_deg = transform_error(transform, patient["mr_to_ct"], points)
    initial_mm, _ = transform_error(sitk.Euler3DTransform(), patient["mr_to_ct"], points)
    print(f"registration error: {displacement_mm:.3f} mm, {angle_deg:.3f} deg (from {initial_mm:.1f} mm)")
    assert initial_mm > 3  # the case really was misaligned
    assert displacement_mm <= 1.0
    assert angle_deg <= 1.0


def test_ct_mask_requires_hounsfield_units():
    image = sitk.GetImageFromArray(np.full((4, 8, 8), -2000.0, dtype=np.float32))
    with pytest.raises(ValueError, match="Hounsfield"):
        ct_head_mask(image)


def test_n3_fit_mask_keeps_bright_tissue_and_drops_dark_voxels_of_the_head():
    # A head of bright tissue (100) with a dark shell (bone, 10) and a dark core (CSF, 15).
    z, y, x = np.mgrid[-16:16, -16:16, -16:16]
    r = np.sqrt(x**2 + y**2 + z**2)
    array = np.where(r < 14, 100.0, 0.0)
    array[(r >= 12) & (r < 14)] = 10.0
    array[r < 4] = 15.0
    image = sitk.GetImageFromArray(array.astype(np.float32))
    head = sitk.GetImageFromArray((r < 14).astype(np.uint8))
    fit = sitk.GetArrayFromImage(n3_fit_mask(image, head)) > 0
    np.testing.assert_array_equal(fit, (r >= 4) & (r < 12))
