"""Benchmark: the study-scale reader-study kit (240 MR + 240 CT images of 256x256).

Writes a synthetic manifest, ground-truth PNGs, one model's predictions and metric tables to a
temporary folder (not timed), then times ``build_reader_study`` and prints the page's size. With
Debian's Chromium and Playwright present it also opens the page headless and times the load to
the first image and the move to the next image (a key press), as a reader would feel them.

    python benchmarks/reader_study.py [--images 240] [--size 256]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import gaussian_filter

from mrct.reader_study.design import ReaderStudySettings
from mrct.reader_study.kit import build_reader_study
from mrct.slices.manifest import MANIFEST_COLUMNS

log = logging.getLogger("benchmark")
CHROMIUM = Path("/usr/bin/chromium")


def _head(rng: np.random.Generator, size: int, blur: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    head = (xx**2 / 0.16 + yy**2 / 0.2) < 1
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), blur) * 60 * blur
    return np.clip(np.where(head, 110 + 50 * np.cos(5 * xx) + texture, 0), 0, 255).astype(np.uint8)


def make_data(root: Path, n_slices: int, size: int) -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_slices):
        patient = f"p{i // 20:02d}"
        paths = {}
        for kind in ("mr", "ct", "mask"):
            rel = Path("slices") / kind / f"{patient}_z{i:03d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_head(rng, size, 1.0)).save(root / rel)
            paths[f"{kind}_png"] = str(rel)
        rows.append({"patient": patient, "slice": i, "split": "test", **paths, "ct_lo_hu": -1024.0,
                     "ct_hi_hu": 2000.0, "mr_lo": 0.0, "mr_hi": 1.0, "rows": size, "cols": size,
                     "head_fraction": 0.5, "synthetic": True})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows)[list(MANIFEST_COLUMNS)].to_csv(manifest, index=False)
    dirs, tables = [], {}
    for direction, column in (("mr2ct", "ct_png"), ("ct2mr", "mr_png")):
        out = root / "predictions/model/" / direction
        out.mkdir(parents=True)
        dirs.append(out)
        for row in rows:
            Image.fromarray(_head(rng, size, 3.0)).save(out / Path(row[column]).name)
        tables[direction] = root / f"metrics_{direction}.csv"
        pd.DataFrame({"model": ["model"], "ssim_avg": [0.5]}).to_csv(tables[direction], index=False)
    return {"manifest_path": manifest, "metric_tables": tables, "prediction_dirs": dirs}


def time_in_browser(page_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log.info("browser timing skipped: the Playwright package is missing")
        return
    if not CHROMIUM.exists():
        log.info("browser timing skipped: no %s", CHROMIUM)
        return
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(page_path.as_uri())
        page.wait_for_function("() => document.getElementById('slice').complete")
        log.info("page load to first image: %.2f s", time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(20):
            page.keyboard.press("ArrowRight")
            page.wait_for_function("() => document.getElementById('slice').complete")
        log.info("next image: %.1f ms each (mean of 20)", (time.perf_counter() - start) / 20 * 1000)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240, help="images per modality")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # manifest paths are relative
        root = Path(tmp)
        inputs = make_data(root, args.images // 2 + 10, args.size)
        start = time.perf_counter()
        study = build_reader_study(**inputs, settings=ReaderStudySettings(args.images, "ssim"), seed=42,
                                   questionnaire=root / "questionnaire.html", key=root / "key.csv")
        log.info("build_reader_study: %d images of %dx%d in %.1f s", len(study), args.size, args.size,
                 time.perf_counter() - start)
        log.info("questionnaire.html: %.1f MB", (root / "questionnaire.html").stat().st_size / 1e6)
        time_in_browser(root / "questionnaire.html")


if __name__ == "__main__":
    main()
