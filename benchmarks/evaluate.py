"""Benchmark: evaluate 18 models on ~110 synthetic 256x256 test slices in both directions.

Writes a synthetic manifest, ground-truth PNGs and noisy/blurred predictions for every model to a
temporary folder (not timed), then times ``mrct.evaluation.evaluate.evaluate_model`` for all models, with
as many worker processes as cores given (Snakemake runs one evaluate job per model and core).
Target: at most 2 minutes on 2 CPU cores.

    python benchmarks/evaluate.py [--models 18] [--slices 110] [--size 256] [--cores 2]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from mrct.evaluation.evaluate import evaluate_model

log = logging.getLogger("benchmark")


def _head(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    head = (xx**2 / 0.16 + yy**2 / 0.2) < 1
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), 3) * 400
    return np.clip(np.where(head, 110 + 50 * np.cos(5 * xx) + texture, 0), 0, 255).astype(np.uint8)


def make_data(root: Path, n_models: int, n_slices: int, size: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_slices):
        patient, z = f"bench{i // 20:02d}", i % 20
        name = f"{patient}_z{z:03d}.png"
        ct = _head(rng, size)
        images = {"ct": ct, "mr": (255 - ct) * (ct > 0), "mask": np.where(ct > 0, 255, 0)}
        paths = {}
        for kind, image in images.items():
            paths[kind] = root / "slices" / patient / kind / name
            paths[kind].parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.astype(np.uint8)).save(paths[kind])
        for m in range(n_models):
            for direction, target in (("mr2ct", images["ct"]), ("ct2mr", images["mr"])):
                pred = gaussian_filter(target.astype(float), 0.5 + m / 10) + rng.normal(0, 4, target.shape)
                out = root / "pred" / f"model{m:02d}" / direction / name
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.clip(pred, 0, 255).astype(np.uint8)).save(out)
        rows.append({"patient": patient, "slice": z, "split": "test", "mr_png": str(paths["mr"]),
                     "ct_png": str(paths["ct"]), "mask_png": str(paths["mask"]), "ct_lo_hu": -1024.0, "ct_hi_hu": 2000.0})
    return pd.DataFrame(rows)


def _one(args: tuple[str, pd.DataFrame, Path]) -> int:
    model, manifest, root = args
    slices = evaluate_model(model, manifest, root / "pred" / model, [-1024.0, 3000.0])
    return len(slices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=18)
    parser.add_argument("--slices", type=int, default=110)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        manifest = make_data(root, args.models, args.slices, args.size)
        print(f"synthetic data: {args.models} models x {args.slices} slices x 2 directions "
              f"({args.size}x{args.size}) written in {time.perf_counter() - start:.1f} s (not timed)")
        jobs = [(f"model{m:02d}", manifest, root) for m in range(args.models)]
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.cores) as pool:
            n_rows = sum(pool.map(_one, jobs))
        elapsed = time.perf_counter() - start
    pairs = args.models * args.slices * 2
    print(f"evaluated {n_rows} slice/direction rows ({pairs} image pairs) with {args.cores} processes "
          f"in {elapsed:.1f} s = {1000 * elapsed / pairs:.1f} ms per pair per run; "
          f"target <= 120 s: {'met' if elapsed <= 120 else 'MISSED'}")


if __name__ == "__main__":
    main()
