"""Seconds and peak memory of the volume metrics of one whole synthetic CT (HU metrics, MS-SSIM, tissue overlap).

A 1 mm demo head CT (nilearn's MNI152 grid, 197 x 233 x 189 voxels), its body mask, and a
perturbed copy as the synthetic CT, as rule evaluate_volumes scores each test patient. The study
scores about 19 models x 5 test patients such volumes.

    python benchmarks/volumes.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from mrct.config import load_config
from mrct.evaluation.hu_metrics import volume_hu_metrics
from mrct.evaluation.tissue import tissue_overlap
from mrct.preprocess.masks import body_mask
from mrct.sources import demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="config.yaml")
    args = parser.parse_args()
    config = load_config(args.config)
    settings = {**config["dataset"]["demo"], "resolution_mm": 1}
    patient = demo.make_patient(demo.load_head_model(1), demo.draw_parameters(config["seed"], "demo001", settings), settings)
    ct = sitk.GetArrayFromImage(patient["ct"]).astype(np.float64)
    mask = sitk.GetArrayFromImage(body_mask(patient["ct"])) > 0
    sct = ndimage.gaussian_filter(ct, 1.0) + np.random.default_rng(0).normal(0, 25, ct.shape)
    print(f"volume {ct.shape[::-1]} voxels, body mask {mask.mean():.1%} of them")
    spacing = patient["ct"].GetSpacing()[::-1]
    steps = {
        "HU metrics (MAE, PSNR, SSIM, MS-SSIM)": lambda: volume_hu_metrics(sct, ct, mask, config["evaluate"]["hu_clip"]),
        "tissue overlap (Dice, HD95)": lambda: tissue_overlap(sct, ct, mask, spacing, config["evaluate"]["tissue_hu"]),
    }
    for name, step in steps.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            values = step()
            times.append(time.perf_counter() - start)
        print({k: round(v, 4) for k, v in values.items()})
        print(f"{name}: median {np.median(times):.2f} s of {args.repeats}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
