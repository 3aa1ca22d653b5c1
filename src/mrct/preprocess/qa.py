"""QA figures of preprocessing: the bias field, and the registration as a checkerboard."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from mrct.io.atomic import atomic_path  # noqa: E402


def _mid_planes(array: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal and sagittal planes through the centre (array order z, y, x; LPS)."""
    z, y, x = (n // 2 for n in array.shape)
    return [array[z], np.flipud(array[:, y]), np.flipud(array[:, :, x])]


def _scale(array: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    values = array[mask > 0] if mask is not None and mask.any() else array
    lo, hi = np.percentile(values, [1, 99])
    return np.clip((array - lo) / max(hi - lo, 1e-6), 0, 1)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    rows, cols = np.indices(a.shape)
    board = ((rows * tiles // a.shape[0]) + (cols * tiles // a.shape[1])) % 2 == 0
    return np.where(board, a, b)


def registration_figure(ct: sitk.Image, mr: sitk.Image, mask: sitk.Image, title: str, path: str | Path) -> None:
    ct_a = np.clip((sitk.GetArrayFromImage(ct) + 200) / 1200, 0, 1)  # soft-tissue-to-bone window
    mask_a = sitk.GetArrayFromImage(mask)
    mr_a = _scale(sitk.GetArrayFromImage(mr), mask_a)
    fig, axes = plt.subplots(2, 3, figsize=(9, 6))
    for column, (c, m) in enumerate(zip(_mid_planes(ct_a), _mid_planes(mr_a), strict=True)):
        axes[0, column].imshow(checkerboard(c, m), cmap="gray", aspect="auto")
        axes[1, column].imshow(m, cmap="gray", aspect="auto")
        axes[1, column].contour(c > 0.5, levels=[0.5], colors="red", linewidths=0.6)
    for axis in axes.ravel():
        axis.set_axis_off()
    axes[0, 0].set_title("checkerboard CT / registered MR", loc="left", fontsize=9)
    axes[1, 0].set_title("registered MR, CT bone contour (red)", loc="left", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)


def bias_figure(before: sitk.Image, after: sitk.Image, field: sitk.Image, mask: sitk.Image, title: str, path: str | Path) -> None:
    mask_a = sitk.GetArrayFromImage(mask)
    z = int(np.argmax(mask_a.reshape(mask_a.shape[0], -1).sum(axis=1)))
    panels = [(_scale(sitk.GetArrayFromImage(before), mask_a)[z], "MR before", "gray"),
              (_scale(sitk.GetArrayFromImage(after), mask_a)[z], "MR after", "gray"),
              (np.where(mask_a[z] > 0, sitk.GetArrayFromImage(field)[z], np.nan), "estimated field", "coolwarm")]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    for axis, (image, label, cmap) in zip(axes, panels, strict=True):
        shown = axis.imshow(image, cmap=cmap)
        axis.set_title(label, fontsize=9)
        axis.set_axis_off()
    fig.colorbar(shown, ax=axes[2], fraction=0.046)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
