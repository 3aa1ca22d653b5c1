"""Images of the HTML report: encoded at the size they are shown, and per-patient QA that folds away.

The report is one file that must open in a browser in a few seconds at the study's shape (19 or
more models, 18 or more patients, two directions): :data:`SIZE_BUDGET_MB`. Two things keep it
there. Every PNG is re-encoded at the width the page shows it (:data:`DISPLAY_WIDTH`, the page's
column) before it is inlined: a figure rendered wider only costs bytes, never detail a reader can
see. And the figures that grow with the number of models show the control and the best models only
(``evaluate.n_figure_models``, :func:`mrct.evaluation.figures.figure_models`). The per-patient QA
figures are folded (``<details>``), the flagged patients' open and first, and only the patients a
reader should look at are shown (``report.qa_patients``): the QA section weighs the same for 18 or
180 patients.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: Width in CSS pixels of the report's column (CSS: body max-width 1200px, 1em padding each side).
DISPLAY_WIDTH = 1170
#: The whole report at the study's shape stays below this (tests/test_report_scale.py checks it).
SIZE_BUDGET_MB = 25.0
#: Patients whose QA figures the report shows when the config does not say (``report.qa_patients``).
DEFAULT_QA_PATIENTS = 12


def display_png(path: str | Path, max_width: int = DISPLAY_WIDTH) -> bytes:
    """The PNG's bytes for the page: at most ``max_width`` wide, losslessly re-encoded, or its own.

    An opaque RGBA figure (matplotlib writes them) loses its alpha channel, a figure with no colour
    (gray slices, black text) becomes grayscale, and an image of 256 colours or fewer becomes an
    exact palette image: none changes a pixel; together they save a quarter of a plot's bytes and
    two thirds of a noisy gray figure's. A wider image is scaled down to ``max_width``, the most
    the page shows of it. Whichever of these bytes and the file's own are fewer is inlined: scaling
    blurs hard edges (a grid of small slices magnified with nearest-neighbour pixels) into more
    bytes, and the browser scales a wider image down to the column anyway. zlib level 6: level 9
    saves 2 to 5 % more at five to ten times the time.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a PNG image for the report, file not found")
    original = path.read_bytes()
    with Image.open(io.BytesIO(original)) as image:
        image.load()
        if image.format != "PNG":
            raise ValueError(f"{path}: expected a PNG image for the report, got {image.format}")
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGBA")
            if image.getextrema()[3][0] == 255:  # opaque: the alpha channel carries nothing
                image = image.convert("RGB")
        if image.width > max_width:
            height = max(1, round(image.height * max_width / image.width))
            image = image.resize((max_width, height), Image.Resampling.LANCZOS)
        if image.mode == "RGB" and _is_gray(image):
            image = image.convert("L")  # exact: R = G = B everywhere; a third of the bytes of noisy slices
        elif image.mode == "RGB" and image.getcolors(256) is not None:
            image = _exact_palette(image)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
    encoded = buffer.getvalue()
    return encoded if len(encoded) < len(original) else original


def _is_gray(image: Image.Image) -> bool:
    """Whether every pixel of an RGB image has R = G = B (a figure of gray slices, black text)."""
    pixels = np.asarray(image)
    return bool((pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all())


def _exact_palette(image: Image.Image) -> Image.Image:
    """An RGB image of at most 256 colours as a palette image with exactly those colours (lossless)."""
    pixels = np.asarray(image, dtype=np.uint32)
    packed = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    colours, index = np.unique(packed, return_inverse=True)
    palette = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.uint8)
    result = Image.fromarray(index.reshape(packed.shape).astype(np.uint8), mode="P")
    result.putpalette(palette.ravel().tolist())
    return result


def png_data_uri(path: str | Path, max_width: int = DISPLAY_WIDTH) -> str:
    """A ``data:image/png;base64,...`` URI of the image at display size."""
    return "data:image/png;base64," + base64.b64encode(display_png(path, max_width)).decode("ascii")


def figure_html(path: str | Path, caption: str) -> str:
    """A <figure> with the image inlined at display size and an escaped caption."""
    caption = html.escape(caption)
    return f'<figure><img alt="{caption}" src="{png_data_uri(path)}"><figcaption>{caption}</figcaption></figure>'


def qa_figures_html(images: Iterable[str | Path], flagged: Mapping[str, str], caption: str,
                    order: Sequence[str] | None = None, limit: int | None = None) -> str:
    """The QA figures of the patients a reader should look at, each in a folded <details>.

    The patient is the image's folder name (``results/preprocessed/{patient}/qa.png``); ``flagged``
    maps a flagged patient to its reason. ``order`` is the order of review (flagged patients first,
    then the passing ones nearest a bound: :func:`mrct.preprocess.registration_qa.review_order`;
    by default flagged first, then by id), and only its first ``limit`` patients are shown (None:
    all). Why a limit: at 0.3 MB a patient, 180 patients would weigh more than the rest of the
    report; the table above lists every patient, and every figure stays in its folder and in
    Snakemake's own report. Flagged patients are open, the rest closed.
    """
    by_patient: dict[str, list[Path]] = {}
    for path in map(Path, images):
        by_patient.setdefault(path.parent.name, []).append(path)
    if not by_patient:
        return ""
    ranked = [p for p in (order or []) if p in by_patient]
    rest = sorted(set(by_patient) - set(ranked), key=lambda p: (p not in flagged, p))
    shown = (ranked + rest)[:limit]  # limit None: all
    blocks = []
    for patient in shown:
        figures = "".join(figure_html(p, f"{patient}: {caption}") for p in by_patient[patient])
        if patient in flagged:
            title = f"{html.escape(patient)}: <b>flagged</b> ({html.escape(flagged[patient])})"
            blocks.append(f'<details class="qa" open><summary>{title}</summary>{figures}</details>')
        else:
            blocks.append(f'<details class="qa"><summary>{html.escape(patient)}</summary>{figures}</details>')
    n_flagged = sum(p in flagged for p in by_patient)
    n_flagged_shown = sum(p in flagged for p in shown)
    if len(shown) == len(by_patient):
        lead = (f"<p>QA figure per patient ({len(shown)} patients; {n_flagged} flagged, shown open; click a "
                "patient to open the others).</p>")
    else:
        passing = len(shown) - n_flagged_shown
        flagged_text = (f"the {n_flagged} flagged patients (open)" if n_flagged_shown == n_flagged else
                        f"{n_flagged_shown} of the {n_flagged} flagged patients (open; the others' figures are "
                        "not shown here)")
        lead = (f"<p>QA figures of {len(shown)} of the {len(by_patient)} patients (report.qa_patients): "
                f"{flagged_text}, then {passing} passing patients "
                f"{'nearest a QA bound' if order else 'by id'} (click to open). "
                "The table above has every patient's QA values; every patient's QA image is "
                "results/preprocessed/&lt;patient&gt;/qa.png, and all are in <code>snakemake --report</code>.</p>")
    return lead + "".join(blocks)


def check_size(page: str, budget_mb: float = SIZE_BUDGET_MB) -> float:
    """The page's size in MB (10^6 bytes), with a warning in the log when it is over the budget."""
    size = len(page.encode("utf-8")) / 1e6
    if size > budget_mb:
        log.warning("report: %.1f MB, over the %.0f MB budget a browser opens in a few seconds; "
                    "lower evaluate.n_figure_models or the number of figures", size, budget_mb)
    return size
