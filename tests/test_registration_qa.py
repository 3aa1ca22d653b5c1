"""Registration QA: Dice and NMI against independent computations, and a mix-up caught end to end."""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from scipy import ndimage
from scipy.spatial.distance import dice as scipy_dice_dissimilarity
from scipy.stats import entropy
from sklearn.metrics import mutual_info_score

from mrct.config import deep_merge, load_config, validate_config
from mrct.preprocess.register import _slab_offsets
from mrct.preprocess.registration_qa import (
    RegistrationQAStop,
    collect_registration_qa,
    dice,
    excluded_patients,
    flag_reason,
    normalised_mutual_information,
    peak_metrics,
    quantile_bins,
    read_registration_qa,
    registration_metrics,
    registration_qa_files,
    require_each_group,
    require_enough_patients,
    review_order,
    write_registration_qa,
)
from mrct.preprocess.steps import bias_correct_files, register_files
from mrct.report import excluded_section, registration_qa_section, registration_qa_table
from mrct.slices.manifest import SLICE_TABLE_COLUMNS
from mrct.slices.split import assign_split, build_manifest
from mrct.sources import demo


CONFIG = load_config("config.yaml")
QA_SETTINGS = CONFIG["preprocess"]["registration_qa"]
QA_BOUNDS = {key: value for key, value in QA_SETTINGS.items() if key != "keep_flagged"}


def _box(shape, start, stop):
    array = np.zeros(shape, bool)
    array[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = True
    return array


def test_dice_of_two_boxes_with_known_overlap():
    # Two 10^3 boxes shifted by 4 along x: overlap 6 x 10 x 10 = 600, Dice = 2 * 600 / 2000.
    a = _box((20, 20, 20), (0, 0, 0), (10, 10, 10))
    b = _box((20, 20, 20), (0, 0, 4), (10, 10, 14))
    assert dice(a, b) == pytest.approx(0.6, abs=1e-12)
    assert dice(a, b) == pytest.approx(1 - scipy_dice_dissimilarity(a.ravel(), b.ravel()), abs=1e-12)
    # Inside x < 10 only: A keeps 1000 voxels, B 600, all of them shared: 1200 / 1600.
    within = _box((20, 20, 20), (0, 0, 0), (20, 20, 10))
    assert dice(a, b, within) == pytest.approx(0.75, abs=1e-12)
    assert dice(a, b, within) == pytest.approx(1 - scipy_dice_dissimilarity((a & within).ravel(), (b & within).ravel()))
    assert math.isnan(dice(np.zeros(8, bool), np.zeros(8, bool)))
    with pytest.raises(ValueError, match="one shape"):
        dice(a, b[:5])


def _independent_nmi(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    """Studholme's NMI from scikit-learn's MI and scipy's entropies (both in nats)."""
    la, lb = quantile_bins(a.ravel(), bins), quantile_bins(b.ravel(), bins)
    ha, hb = entropy(np.bincount(la)), entropy(np.bincount(lb))
    return (ha + hb) / (ha + hb - mutual_info_score(la, lb))


def test_nmi_of_an_image_with_itself_noise_and_a_noisy_copy():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(40, 40, 40))
    noise = rng.normal(size=image.shape)
    itself = normalised_mutual_information(image, image)
    independent = normalised_mutual_information(image, noise)
    noisy = normalised_mutual_information(image, image + 0.5 * noise)
    print(f"NMI: itself {itself:.4f}, independent noise {independent:.4f}, noisy copy {noisy:.4f}")
    assert itself == pytest.approx(2.0, abs=1e-9)
    # Finite-sample bias of MI is about (bins - 1)^2 / (2 N) = 0.0075 nats here: NMI about 1.001.
    assert independent == pytest.approx(1.0, abs=0.01)
    assert 1.05 < noisy < 1.95
    for a, b in ((image, noise), (image, image + 0.5 * noise)):
        assert normalised_mutual_information(a, b) == pytest.approx(_independent_nmi(a, b, 32), rel=1e-9)
    # Quantile bins: a monotone change of units (MR scaling, a window) leaves the figure unchanged.
    assert normalised_mutual_information(np.exp(image), 3 * (image + 0.5 * noise) + 7) == pytest.approx(noisy, rel=1e-12)


def test_nmi_counts_only_the_region():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(20, 20, 40))
    other = rng.normal(size=image.shape)
    other[..., :20] = image[..., :20]  # identical in one half, independent in the other
    half = np.zeros(image.shape, bool)
    half[..., :20] = True
    assert normalised_mutual_information(image, other, half) == pytest.approx(2.0, abs=1e-9)
    assert normalised_mutual_information(image, other, ~half) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="voxels in the region"):
        normalised_mutual_information(image, other, np.zeros(image.shape, bool))


def _image(array, spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image


def test_partial_field_of_view_is_judged_on_what_it_shows():
    # A box "head" 24 voxels tall; the MR is the same head but only a 6-slice slab of it.
    shape = (40, 32, 32)
    head = _box(shape, (8, 6, 6), (32, 26, 26))
    rng = np.random.default_rng(2)
    ct = np.where(head, 40.0 + rng.normal(0, 30, shape), -1000.0).astype(np.float32)
    mr = np.where(head, 1000.0 - ct / 4, 0.0).astype(np.float32)  # a different, monotone contrast
    slab = slice(16, 22)
    mr_slab = _image(mr[slab], origin=(0.0, 0.0, 2.0 * slab.start))
    mr_mask = _image(head[slab].astype(np.uint8), origin=(0.0, 0.0, 2.0 * slab.start))
    ct_image, ct_mask = _image(ct), _image(head.astype(np.uint8))
    identity = sitk.Euler3DTransform()
    mr_on_ct = sitk.Resample(mr_slab, ct_image, identity, sitk.sitkLinear, 0.0)
    metrics = registration_metrics(ct_image, mr_on_ct, ct_mask, mr_mask, identity)
    assert metrics["dice_head"] == pytest.approx(1.0)
    assert metrics["nmi"] == pytest.approx(2.0, abs=1e-9)
    assert metrics["head_in_fov"] == pytest.approx(6 / 24)
    # The whole CT head against the slab's mask would give 2 * 6 / (24 + 6) = 0.4.
    moved = sitk.GetArrayFromImage(sitk.Resample(mr_mask, ct_image, identity, sitk.sitkNearestNeighbor, 0))
    assert dice(head, moved > 0) == pytest.approx(0.4)
    # The same slab shifted 4 voxels (8 mm) sideways: Dice of two 20x20 squares shifted by 4 per slice.
    shifted = sitk.TranslationTransform(3, (8.0, 0.0, 0.0))
    metrics = registration_metrics(ct_image, sitk.Resample(mr_slab, ct_image, shifted, sitk.sitkLinear, 0.0),
                                   ct_mask, mr_mask, shifted)
    assert metrics["dice_head"] == pytest.approx(2 * 16 * 20 / (2 * 400))
    assert metrics["nmi"] < 1.5
    # An MR that sees no part of the CT's head: no NMI, and flagged whatever the bounds.
    away = sitk.TranslationTransform(3, (0.0, 0.0, 200.0))
    metrics = registration_metrics(ct_image, sitk.Resample(mr_slab, ct_image, away, sitk.sitkLinear, 0.0),
                                   ct_mask, mr_mask, away)
    assert math.isnan(metrics["nmi"]) and metrics["head_in_fov"] == 0
    assert "NMI nan" in flag_reason({**metrics, "dice_head": 1.0}, {"min_dice": 0.5, "min_nmi": 1.05})


def _textured_head(seed: int, shape=(40, 48, 48), sigma=1.5):
    """A ball "head" filled with smooth random texture (fine anatomy), 2 mm voxels."""
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    z, y, x = np.indices(shape)
    head = ((z - shape[0] / 2) / 17) ** 2 + ((y - shape[1] / 2) / 20) ** 2 + ((x - shape[2] / 2) / 20) ** 2 < 1
    return head, texture


def test_nmi_peak_is_sharp_for_a_true_pair_flat_for_another_texture_and_off_for_a_shifted_one():
    head, texture = _textured_head(3)
    _, other_texture = _textured_head(4)
    ct_array = np.where(head, 40 + 300 * texture, -1000.0).astype(np.float32)
    ct, ct_mask = _image(ct_array), _image(head.astype(np.uint8))
    # The MR: a non-monotone function of the same anatomy (as T1 against HU), or of another one.
    mr = _image(np.where(head, 500 + 800 * np.abs(texture), 0.0).astype(np.float32))
    other = _image(np.where(head, 500 + 800 * np.abs(other_texture), 0.0).astype(np.float32))
    identity = sitk.Euler3DTransform()
    true = peak_metrics(ct, mr, ct_mask, identity)
    mixup = peak_metrics(ct, other, ct_mask, identity)
    shifted = peak_metrics(ct, mr, ct_mask, sitk.Euler3DTransform((0, 0, 0), 0, 0, 0, (6.0, 0.0, 0.0)))
    print(f"true {true}, other texture {mixup}, 6 mm off {shifted}")
    assert true["peak_drop"] > 0.5 and true["nearby_gain"] < 0
    # Same outline, unrelated inside: almost nothing is shared, so almost nothing is lost.
    assert mixup["peak_drop"] < 0.35
    # 6 mm off: the probe 4 mm back towards the truth fits better than the answer.
    assert shifted["nearby_gain"] > 0 and shifted["peak_drop"] < true["peak_drop"]
    # The probes are counted in one region: moving the head out of the MR's view gives NaN, not a number.
    away = peak_metrics(ct, mr, ct_mask, sitk.TranslationTransform(3, (0.0, 0.0, 500.0)))
    assert math.isnan(away["peak_drop"]) and "NMI peak drop nan" in flag_reason(away, {"min_peak_drop": 0.35})


def _record(tmp_path, patient, dice_head, nmi, peak_drop=0.5, nearby_gain=-0.4):
    path = tmp_path / f"{patient}.json"
    path.write_text(json.dumps({"patient": patient, "dice_head": dice_head, "nmi": nmi, "head_in_fov": 1.0,
                                "peak_drop": peak_drop, "nearby_gain": nearby_gain}))
    return path


BOUNDS = {"min_peak_drop": 0.35, "max_nearby_gain": 0.0, "min_dice": 0.9, "min_nmi": None}


def test_bounds_flag_with_a_reason_and_the_table_round_trips(tmp_path):
    paths = [_record(tmp_path, "p1", 0.98, 1.15), _record(tmp_path, "p2", 0.80, 1.15),
             _record(tmp_path, "p3", 0.98, 1.02, peak_drop=0.2), _record(tmp_path, "p4", float("nan"), 1.15),
             _record(tmp_path, "p5", 0.98, 1.02, nearby_gain=0.05)]
    table = collect_registration_qa(paths, BOUNDS)
    assert table["flagged"].tolist() == [False, True, True, True, True]
    assert table["decision"].tolist() == ["pass"] + ["left out"] * 4
    assert table.loc[0, "reason"] == "passed: NMI peak drop 0.500 >= 0.35, NMI gain a few mm off -0.400 <= 0.0, head-mask Dice 0.980 >= 0.9"
    assert table.loc[1, "reason"] == "head-mask Dice 0.800 < 0.9"
    assert table.loc[2, "reason"] == "NMI peak drop 0.200 < 0.35"
    assert table.loc[4, "reason"] == "NMI gain a few mm off 0.050 > 0.0"
    # The absolute NMI bound applies only when set; kept patients are marked so.
    kept = collect_registration_qa(paths[:1] + paths[2:3], {**BOUNDS, "min_peak_drop": None, "min_nmi": 1.05},
                                   keep_flagged=True)
    assert kept["decision"].tolist() == ["pass", "kept, flagged"]
    assert kept.loc[1, "reason"] == "NMI 1.020 < 1.05"
    write_registration_qa(table, tmp_path / "qa.csv")
    read = read_registration_qa(tmp_path / "qa.csv")
    for column in ("flagged", "reason", "decision"):
        assert read[column].tolist() == table[column].tolist()
    assert list(read.columns[:6]) == ["patient", "dice_head", "nmi", "head_in_fov", "peak_drop", "nearby_gain"]
    assert excluded_patients(read, keep_flagged=False) == dict(zip(read["patient"][1:], read["reason"][1:], strict=True))
    assert excluded_patients(read, keep_flagged=True) == {}
    # The report's QA table: every patient, the decision as the manifest has it, the figures, why.
    page = registration_qa_table(read, pd.DataFrame({"patient": ["p1", "p3"]}))
    assert page.index("<td>p2</td><td>left out</td>") < page.index("<td>p1</td><td>pass</td>")
    assert "<td>p3</td><td>kept, flagged (keep_flagged is true)</td><td>0.2</td>" in page
    for row in read.itertuples():
        assert html.escape(row.reason) in page
    (tmp_path / "bad.json").write_text(json.dumps({"patient": "p6", "nmi": 1.1}))
    with pytest.raises(ValueError, match="bad.json.*dice_head"):
        collect_registration_qa([tmp_path / "bad.json"], BOUNDS)


def test_review_order_puts_the_flagged_first_then_the_passing_nearest_a_bound(tmp_path):
    # b1 is nearest the peak-drop bound, c1 the Dice bound, d1 the nearby-gain bound (each rank 1
    # there), e1 second on every figure, a1 far from all; z1 fails the Dice bound.
    figures = {"z1": (0.80, 0.50, -0.40), "a1": (0.99, 0.60, -0.40), "b1": (0.99, 0.36, -0.40),
               "c1": (0.91, 0.55, -0.40), "d1": (0.97, 0.50, -0.01), "e1": (0.98, 0.45, -0.30)}
    paths = [_record(tmp_path, p, d, 1.1, peak_drop=g, nearby_gain=n) for p, (d, g, n) in figures.items()]
    table = collect_registration_qa(paths, BOUNDS)
    assert review_order(table, BOUNDS) == ["z1", "b1", "c1", "d1", "e1", "a1"]
    # No bound applied: the flagged first, then by id.
    assert review_order(table, dict.fromkeys(BOUNDS)) == ["z1", "a1", "b1", "c1", "d1", "e1"]
    # Only the applied bounds count: without the Dice bound, c1 is far from every bound left.
    assert review_order(table, {**BOUNDS, "min_dice": None})[1:4] == ["b1", "d1", "e1"]


def _config_blocks(message: str) -> list[dict]:
    """The YAML blocks (``preprocess: ...``) a stop message offers, parsed."""
    return [yaml.safe_load(block) for block in re.findall(r"^preprocess:\n(?:  .*\n)+", message, flags=re.M)]


def test_qa_that_flags_every_patient_stops_with_each_patients_figures_and_config_lines_that_work(tmp_path):
    # Four patients whose figures fail the default bounds (config.yaml) in different ways.
    paths = [_record(tmp_path, "p1", 0.97, 1.04, peak_drop=0.12, nearby_gain=-0.1),
             _record(tmp_path, "p2", 0.74, 1.01, peak_drop=0.01, nearby_gain=0.153),
             _record(tmp_path, "p3", 0.98, 1.03, peak_drop=0.3, nearby_gain=0.02),
             _record(tmp_path, "p4", 0.86, 1.02, peak_drop=-0.014, nearby_gain=-0.05)]
    settings = CONFIG["preprocess"]["registration_qa"]
    bounds = {key: value for key, value in settings.items() if key != "keep_flagged"}
    assert settings["keep_flagged"] is False
    table = collect_registration_qa(paths, bounds, settings["keep_flagged"])
    assert table["flagged"].all()
    with pytest.raises(RegistrationQAStop) as stop:
        require_enough_patients(table, keep_flagged=False)
    message = str(stop.value)
    print(message)
    assert "4 of 4 patients flagged and left out, 0 left" in message
    for row in table.itertuples():  # every patient's figures, decision and reason
        line = next(line for line in message.splitlines() if line.strip().startswith(row.patient + " "))
        for value in (row.dice_head, row.nmi, row.peak_drop, row.nearby_gain):
            assert f"{value:.3f}" in line
        assert "left out" in line and row.reason in line
    blocks = _config_blocks(message)
    assert blocks[0] == {"preprocess": {"registration_qa": {"keep_flagged": True}}}
    for block in blocks:  # each block is valid config and keeps every patient
        merged = deep_merge(CONFIG, block)
        validate_config(merged)
        settings = merged["preprocess"]["registration_qa"]
        again = collect_registration_qa(paths, {k: v for k, v in settings.items() if k != "keep_flagged"},
                                        settings["keep_flagged"])
        require_enough_patients(again, settings["keep_flagged"])
        assert not excluded_patients(again, settings["keep_flagged"])
    assert blocks[1]["preprocess"]["registration_qa"]["min_peak_drop"] == -0.02
    assert blocks[1]["preprocess"]["registration_qa"]["max_nearby_gain"] == 0.16
    assert "min_nmi" not in blocks[1]["preprocess"]["registration_qa"]  # off, and failing no one
    # One patient passing is not a study either; two are.
    require_enough_patients(collect_registration_qa(paths[:1] + [_record(tmp_path, "p5", 0.99, 1.05)] * 2,
                                                    bounds), keep_flagged=False)
    with pytest.raises(RegistrationQAStop, match="1 left"):
        require_enough_patients(collect_registration_qa(paths[:2] + [_record(tmp_path, "p5", 0.99, 1.05)], bounds),
                                keep_flagged=False)


def _slice_table(tmp_path, patient):
    row = {column: 0 for column in SLICE_TABLE_COLUMNS}
    frame = pd.DataFrame([{**row, "patient": patient, "slice": index} for index in range(3)])
    path = tmp_path / f"{patient}.csv"
    frame.to_csv(path, index=False)
    return path


def test_excluded_patients_have_no_rows_and_others_keep_their_side(tmp_path):
    patients = [f"p{index}" for index in range(1, 8)]
    tables = [_slice_table(tmp_path, patient) for patient in patients]
    full = build_manifest(tables, 0.7, 42)
    split = assign_split(patients, 0.7, 42)
    excluded = next(p for p in patients if split[p] == "train")
    kept = build_manifest(tables, 0.7, 42, excluded={excluded: "mix-up"})
    assert excluded not in set(kept["patient"])
    assert set(kept["split"]) == {"train", "test"}
    pd.testing.assert_frame_equal(kept.reset_index(drop=True),
                                  full[full["patient"] != excluded].reset_index(drop=True))
    test_side = [p for p in patients if split[p] == "test"]
    with pytest.raises(ValueError, match="no patient left in the test split"):
        build_manifest(tables, 0.7, 42, excluded=test_side)
    # The split step stops before that, with every patient's figures and the lines to go on.
    qa = collect_registration_qa([_record(tmp_path, p, 0.99, 1.05, peak_drop=0.1 if p in test_side else 0.5)
                                  for p in patients], BOUNDS)
    with pytest.raises(RegistrationQAStop, match="no patient in the test split") as stop:
        require_each_group(qa, excluded_patients(qa, keep_flagged=False), split)
    assert all(p in str(stop.value) for p in patients) and "keep_flagged: true" in str(stop.value)
    require_each_group(qa, {excluded: "mix-up"}, split)


# --- The demo pairs pass; an MR of another head with a small field of view is caught --------------

SLAB = (0.45, 0.75)  # the MR's field of view: 30 % of the head-to-foot extent, through the ventricles


def _crop(image: sitk.Image, lo: float, hi: float) -> sitk.Image:
    size = image.GetSize()
    start, stop = int(lo * size[2]), int(hi * size[2])
    return sitk.RegionOfInterest(image, [size[0], size[1], stop - start], [0, 0, start])


def _scaled(image: sitk.Image, factor: float) -> sitk.Image:
    """The head ``factor`` times larger about the centre of the grid (another person's size)."""
    centre = image.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in image.GetSize()])
    transform = sitk.ScaleTransform(3, (1 / factor,) * 3)
    transform.SetCenter(centre)
    return sitk.Resample(image, image, transform, sitk.sitkLinear, 0.0)


def _preprocess(root, case: str, ct: sitk.Image, mr: sitk.Image, registration: dict) -> str:
    """Bias correction, registration and QA of one pair through the pipeline's own file steps."""
    raw, out = root / "raw" / case, root / "preprocessed" / case
    raw.mkdir(parents=True)
    sitk.WriteImage(mr, str(raw / "mr.nii.gz"))
    sitk.WriteImage(ct, str(raw / "ct.nii.gz"))
    bias = {k: str(out / f"{k}.nii.gz") for k in ("mr", "field", "mask")} | {"qa": str(out / "bias_qa.png")}
    bias_correct_files(str(raw / "mr.nii.gz"), bias, "n4", CONFIG["preprocess"]["n4"], case)
    registered = {k: str(out / f"registered_{k}.nii.gz") for k in ("mr", "ct", "mask")}
    registered |= {"transform": str(out / "mr_to_ct.tfm"), "qa": str(out / "qa.png")}
    register_files(bias["mr"], bias["mask"], str(raw / "ct.nii.gz"), registered, registration,
                   CONFIG["preprocess"]["head_threshold_hu"], CONFIG["seed"], case)
    record = str(out / "registration_qa.json")
    registration_qa_files(registered["ct"], registered["mr"], registered["mask"], bias["mask"],
                          registered["transform"], record, case, mr_native_path=bias["mr"])
    return record


@pytest.fixture(scope="module")
def mixup(e2e_run, tmp_path_factory):
    """The shared run's whole-head pairs (demo001-005; demo003's MR is another head's, made by
    ``dataset.demo.mixed_up``), beside two slab MRs through N4, registration and QA as the pipeline
    runs them: a demo pair whose MR is a slab, and a slab MR of another head with demo001's CT.
    """
    root = tmp_path_factory.mktemp("mixup")
    settings = dict(CONFIG["dataset"]["demo"])
    model = demo.load_head_model(settings["resolution_mm"])

    def patient(name, **overrides):
        drawn = {**settings, **overrides}
        return demo.make_patient(model, demo.draw_parameters(CONFIG["seed"], name, drawn), drawn)

    # A slab constrains the tilt weakly and the optimiser crawls: 60 iterations leave a correct
    # slab 5-10 mm off (and rightly flagged); 300 let it converge.
    slab = {**CONFIG["preprocess"]["registration"], "iterations": 300}
    demo001, demo004 = patient("demo001"), patient("demo004")
    # Another head: a strong deformation (15 mm instead of 3) and 10 % smaller, seen as a slab.
    other = patient("demo017", deformation_mm=15.0)
    cases = {"slab004": (demo004["ct"], _crop(demo004["mr"], *SLAB)),
             "mixup": (demo001["ct"], _crop(_scaled(other["mr"], 0.9), *SLAB))}
    records = [_preprocess(root, case, ct, mr, slab) for case, (ct, mr) in cases.items()]
    # The whole heads as an end-to-end run registered them (the repository's registration settings)
    records += sorted(str(p) for p in (e2e_run / "results" / "preprocessed").glob("*/registration_qa.json"))
    table = collect_registration_qa(records, QA_BOUNDS)
    write_registration_qa(table, root / "registration_qa.csv")
    print("\n" + table.to_string(index=False))
    return read_registration_qa(root / "registration_qa.csv")


@pytest.mark.slow
def test_demo_pairs_pass_registration_qa(mixup):
    table = mixup
    passed = table[~table["patient"].isin(["mixup", "demo003"])]
    assert len(passed) == 5 and not passed["flagged"].any(), passed.to_string()
    # The slab covers well under half of the CT's head, and is still judged on what it shows.
    assert table.set_index("patient").loc["slab004", "head_in_fov"] < 0.5


@pytest.mark.slow
def test_mixed_up_pair_is_flagged_left_out_and_reported(mixup, tmp_path):
    table = mixup
    row = table.set_index("patient").loc["mixup"]
    assert row["flagged"], table.to_string()
    assert "NMI peak drop" in row["reason"]
    assert table.set_index("patient").loc["demo003", "flagged"]  # dataset.demo.mixed_up's MR is caught
    table = table[table["patient"] != "demo003"].reset_index(drop=True)
    excluded = excluded_patients(table, keep_flagged=False)
    assert set(excluded) == {"mixup"}
    tables = [_slice_table(tmp_path, patient) for patient in table["patient"]]
    manifest = build_manifest(tables, 0.7, CONFIG["seed"], excluded)
    assert "mixup" not in set(manifest["patient"])
    assert set(manifest["patient"]) == set(table["patient"]) - {"mixup"}
    assert set(manifest["split"]) == {"train", "test"}
    kept = build_manifest(tables, 0.7, CONFIG["seed"], excluded_patients(table, keep_flagged=True))
    assert "mixup" in set(kept["patient"])
    page = registration_qa_section(table, manifest) + excluded_section(table, manifest)
    assert "mixup</b>, left out: " + html.escape(row["reason"]) in page
    assert "Left out of training and evaluation (registration flagged)" in page
    # The QA table: every patient with the decision, its figures and why.
    for patient in ("demo001", "demo002", "slab004"):
        assert f"<tr><td>{patient}</td><td>pass</td><td>{table.set_index('patient').loc[patient, 'peak_drop']:.4g}</td>" in page
    assert "<tr><td>mixup</td><td>left out</td>" in page
    assert "mixup</b>, kept (keep_flagged is true)" in registration_qa_section(table, kept)


def test_a_slab_mr_gets_its_start_searched_head_to_foot_and_a_whole_head_does_not():
    ct_mask = _image(_box((50, 20, 20), (0, 2, 2), (50, 18, 18)).astype(np.uint8))  # 100 mm of head
    slab = _image(_box((15, 20, 20), (0, 2, 2), (15, 18, 18)).astype(np.uint8))  # 30 mm of it
    assert _slab_offsets(ct_mask, ct_mask) == [0.0]
    # The slab's place is unknown within (100 - 30) / 2 = 35 mm either side of the centres.
    assert _slab_offsets(ct_mask, slab) == [float(v) for v in range(-35, 40, 5)]


@pytest.mark.slow
def test_a_workflow_run_where_qa_flags_every_patient_stops_with_the_figures_and_config_lines(e2e_copy):
    """A copy of the suite's shared run with a bound no pair can pass (peak drop 0.99): only the QA
    table reruns (a bound is its param, no registration is redone), and it stops."""
    import tiny_workflow as tw  # tests/slurm/, on the path through conftest.py
    import yaml

    workdir = e2e_copy
    config = yaml.safe_load((workdir / "config.yaml").read_text(encoding="utf-8"))
    config["preprocess"]["registration_qa"].update(keep_flagged=False, min_peak_drop=0.99)
    tw.write_workdir(workdir, config)
    result = tw.snakemake(workdir, "results/preprocessed/registration_qa.csv", "--cores", "2", check=False)
    ran = result.stdout + result.stderr
    assert "rule registration_qa_table:" in ran and "rule register:" not in ran and "rule bias_correct:" not in ran
    assert result.returncode != 0
    log = (workdir / "logs" / "registration_qa" / "table.log").read_text(encoding="utf-8")
    n = config["dataset"]["demo"]["n_patients"]
    assert f"registration QA: {n} of {n} patients flagged and left out, 0 left" in log
    for patient in demo.demo_patient_ids(config["dataset"]["demo"]["n_patients"]):
        record = json.loads((workdir / "results" / "preprocessed" / patient / "registration_qa.json").read_text())
        line = next(line for line in log.splitlines() if line.strip().startswith(patient + " "))
        assert f"{record['peak_drop']:.3f}" in line and "left out" in line
    block = _config_blocks(log)[1]["preprocess"]["registration_qa"]
    assert block["min_peak_drop"] < 0.99
    assert not (workdir / "results" / "preprocessed" / "registration_qa.csv").exists()
