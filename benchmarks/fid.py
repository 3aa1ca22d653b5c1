"""Speed of the FID step: Inception-v3 features per image and the Fréchet distance in 2048-D.

The network's cost does not depend on its weights, so a randomly initialised network stands in
for the official file (which may be absent). Prints images/s of the Inception features on CPU
(and CUDA when present) for 256x256 slices, the time of one Fréchet distance between two sets
of 2048-D features, and projects the study's FID step: 110 test slices per direction, the real
slices once and 19 models' outputs, both directions (4,400 images, 38 distances).

    python benchmarks/fid.py [--images 8] [--batch 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mrct.evaluation.fid import fid_from_features
from mrct.models.inception import FIDInceptionV3, inception_features

STUDY_IMAGES = 2 * 110 * (19 + 1)
STUDY_DISTANCES = 2 * 19


def time_features(device: str, n_images: int, batch: int) -> float:
    """Seconds per image of Inception features for uint8 256x256 slices (after one warm-up batch)."""
    net = FIDInceptionV3().to(device).eval()
    images = torch.randint(0, 256, (n_images, 256, 256), dtype=torch.uint8)
    inception_features(net, images[:batch], batch, device)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    inception_features(net, images, batch, device)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(110, 2048)), rng.normal(size=(110, 2048)) + 0.1
    start = time.perf_counter()
    fid_from_features(real, fake)
    distance_s = time.perf_counter() - start
    print(f"Fréchet distance, 2048-D, 110 vs 110 slices: {distance_s:.2f} s")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        per_image = time_features(device, args.images, args.batch)
        study = per_image * STUDY_IMAGES + distance_s * STUDY_DISTANCES
        print(f"{device}: Inception features {1 / per_image:.2f} images/s (torch threads {torch.get_num_threads()}); "
              f"study FID step about {study / 60:.1f} min")


if __name__ == "__main__":
    main()
