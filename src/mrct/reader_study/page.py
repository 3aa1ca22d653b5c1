"""The questionnaire page: one self-contained HTML file (images inlined, no server, no network).

The page gets, per image, only an opaque id and a data: URI, in showing order; the study token
that keys the browser's local storage is a hash of that content, so two studies never share
saved answers. Nothing else about an image (file name, model, patient, truth) reaches the page.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib import resources

TEMPLATE = "questionnaire.html"
PLACEHOLDER = "/*STUDY_JSON*/"


def study_token(ids: Sequence[str], uris: Sequence[str]) -> str:
    """A short hash of the ids and images: the local-storage key of this very questionnaire."""
    digest = hashlib.sha256()
    for image_id, uri in zip(ids, uris, strict=True):
        digest.update(image_id.encode("ascii") + b"\0" + uri.encode("ascii") + b"\0")
    return digest.hexdigest()[:16]


def render_questionnaire(ids: Sequence[str], uris: Sequence[str], width: int, height: int) -> str:
    """The HTML page for images shown in the order given."""
    if len(ids) != len(uris) or not ids:
        raise ValueError(f"expected as many image ids as images (at least one), got {len(ids)} and {len(uris)}")
    study = {
        "study": study_token(ids, uris),
        "width": int(width),
        "height": int(height),
        "images": [{"id": i, "src": u} for i, u in zip(ids, uris, strict=True)],
    }
    # "</" would end the <script> element early; ids are hex and URIs base64, but be safe.
    payload = json.dumps(study, separators=(",", ":")).replace("</", "<\\/")
    template = resources.files("mrct.reader_study").joinpath(TEMPLATE).read_text(encoding="utf-8")
    if template.count(PLACEHOLDER) != 1:
        raise ValueError(f"{TEMPLATE}: expected one {PLACEHOLDER} placeholder")
    return template.replace(PLACEHOLDER, payload)
