"""The demo data set: deterministic per seed, plausible values, truths saved beside the volumes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from mrct.sources.demo import demo_patient_ids, draw_parameters, make_demo_patient

SETTINGS = {"n_patients": 2, "resolution_mm": 2, "max_shift_mm": 10.0, "max_rotation_deg": 10.0,
            "bias_amplitude": 1.0, "deformation_mm": 3.0, "noise_fraction": 0.02}


def _outputs(folder):
    out = {key: str(folder / f"{key}.nii.gz") for key in ("mr", "ct", "bias_field")}
    out.update(transform=str(folder / "true_mr_to_ct.tfm"), info=str(folder / "synthetic.json"))
    return out


def test_patient_ids_are_sortable_and_unique():
    ids = demo_patient_ids(12)
    assert ids == sorted(ids) and len(set(ids)) == 12


def test_parameters_depend_on_seed_and_patient():
    a = draw_parameters(1, "demo001", SETTINGS)
    assert a == draw_parameters(1, "demo001", SETTINGS)
    assert a != draw_parameters(2, "demo001", SETTINGS)
    assert a != draw_parameters(1, "demo002", SETTINGS)
    assert max(abs(v) for v in a.rotation_deg) <= SETTINGS["max_rotation_deg"]
    assert max(abs(v) for v in a.translation_mm) <= SETTINGS["max_shift_mm"]


def test_generation_is_deterministic_and_plausible(tmp_path):
    first, second = _outputs(tmp_path / "a"), _outputs(tmp_path / "b")
    make_demo_patient(7, "demo001", SETTINGS, first)
    make_demo_patient(7, "demo001", SETTINGS, second)
    for key in ("mr", "ct", "bias_field"):
        a = sitk.GetArrayFromImage(sitk.ReadImage(first[key]))
        b = sitk.GetArrayFromImage(sitk.ReadImage(second[key]))
        np.testing.assert_array_equal(a, b)
    ct = sitk.GetArrayFromImage(sitk.ReadImage(first["ct"]))
    assert ct.min() == pytest.approx(-1000, abs=1)  # air
    # Cortical bone: the 2 mm tables are partial-volumed at 2 mm voxels, as in a real CT of
    # that resolution (median of the voxels above 800 HU: 948 here, 1179 at 1 mm).
    assert np.percentile(ct[ct > 800], 90) > 1000
    soft = ct[(ct > -50) & (ct < 100)]
    assert soft.size > 0.2 * ct.size  # brain and scalp in soft-tissue range
    field = sitk.GetArrayFromImage(sitk.ReadImage(first["bias_field"]))
    assert field.max() / field.min() == pytest.approx(1 + SETTINGS["bias_amplitude"], rel=1e-3)
    info = json.loads(open(first["info"]).read())
    assert info["synthetic"] is True
    assert sitk.ReadTransform(first["transform"]).GetName() == "Euler3DTransform"
