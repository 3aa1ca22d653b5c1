"""Seconds per patient for bias correction and registration, and peak memory.

A 1 mm demo pair (nilearn's MNI152 grid, 197 x 233 x 189 voxels) with the default config,
on the given number of threads (default 2). Target: both steps within 30 s per patient.

    python benchmarks/preprocess.py [--threads 2] [--method n4]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from mrct.config import load_config
from mrct.preprocess.bias import correct_bias
from mrct.preprocess.masks import ct_head_mask, mr_head_mask
from mrct.preprocess.register import register
from mrct.sources import demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--method", default="n4", choices=["n4", "n3"])
    parser.add_argument("--config", default="config.yaml")
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    config = load_config(args.config)
    settings = {**config["dataset"]["demo"], "resolution_mm": 1}
    patient = demo.make_patient(demo.load_head_model(1), demo.draw_parameters(config["seed"], "demo001", settings), settings)
    print(f"volume {patient['mr'].GetSize()} voxels, {args.threads} threads")

    start = time.perf_counter()
    mr_mask = mr_head_mask(patient["mr"])
    corrected, _ = correct_bias(patient["mr"], mr_mask, args.method, config["preprocess"][args.method])
    bias_s = time.perf_counter() - start

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        register(patient["ct"], corrected, ct_head_mask(patient["ct"]), mr_mask,
                 config["preprocess"]["registration"], config["seed"], Path(workdir))
    register_s = time.perf_counter() - start

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bias correction ({args.method}): {bias_s:.1f} s/patient")
    print(f"registration:            {register_s:.1f} s/patient")
    print(f"both:                    {bias_s + register_s:.1f} s/patient (target <= 30 s)")
    print(f"peak memory:             {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
