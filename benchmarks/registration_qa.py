"""The registration-QA figures of the cases its bounds were set on (docs/running.md, "Registration QA").

Real head anatomy (tests/registration_cases.py: pycortex's single-subject T1, a CT-like volume
derived from it, the demo's bias field, Rician noise, misalignments up to 9 mm / 9 degrees, 2 mm),
through N4, registration and QA as the pipeline runs them: correct pairs (noise 2-5 %, bias
max/min 2 and 3, whole head and slabs), another head (the T1 mirrored and deformed) of the same
size and +-10 %, whole and as a slab, and registrations started 40, 10 and 5 mm off with too few
iterations. Prints one row per case with the decision under the given config's bounds. About
10 minutes on 2 free cores; needs the test extra (pycortex).

    python benchmarks/registration_qa.py [--config config.yaml] [--out /tmp/registration_qa_cases]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import real_head  # noqa: E402
import registration_cases as cases  # noqa: E402
from mrct.config import load_config  # noqa: E402
from mrct.preprocess.registration_qa import collect_registration_qa  # noqa: E402

#: (name, seed of field and noise, anatomy: "own" or a scale of another head, rotation deg,
#: translation mm, slab, noise, bias amplitude)
CASES = [
    ("correct", 1, "own", (6, -9, 4), (9, -5, 7), None, 0.02, 1.0),
    ("correct_slab", 2, "own", (-5, 3, 8), (-7, 8, -4), (0.45, 0.75), 0.02, 1.0),
    ("correct_noise5", 4, "own", (-8, 5, -7), (4, 9, -8), None, 0.05, 1.0),
    ("correct_slab_noise5", 5, "own", (3, -7, 9), (-9, -3, 6), (0.5, 0.75), 0.05, 1.0),
    ("correct_bias2", 6, "own", (2, 9, -3), (-6, 2, 9), None, 0.03, 2.0),
    *[(f"other_head_{scale}", 3, scale, (6, -9, 4), (9, -5, 7), None, 0.02, 1.0) for scale in (1.0, 0.9, 1.1)],
    *[(f"other_head_slab_{scale}", 3, scale, (6, -9, 4), (9, -5, 7), (0.45, 0.75), 0.02, 1.0)
      for scale in (1.0, 0.9, 1.1)],
]
#: Registrations of "correct" started this far off (mm) with this many iterations.
FAILED = [(40.0, 5), (10.0, 5), (5.0, 3)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    config = load_config(args.config)
    settings = config["preprocess"]["registration_qa"]
    bias = dict(config["dataset"]["demo"])
    slab_registration = {**config["preprocess"]["registration"], "iterations": 300}
    root = Path(args.out or tempfile.mkdtemp(prefix="registration_qa_cases_"))
    t1 = real_head.load_real_head()
    ct = cases.ct_like(t1, seed=1)
    others = {}
    records, errors = [], {}
    for name, seed, anatomy, rotation, translation, slab, noise, amplitude in CASES:
        if anatomy != "own" and anatomy not in others:
            others[anatomy] = cases.other_head(t1, seed=7, scale=anatomy)
        motion = cases.misalignment(t1, rotation, translation)
        mr = cases.mr_like(t1 if anatomy == "own" else others[anatomy], f"case{seed:03d}", seed, motion,
                           {**bias, "bias_amplitude": amplitude}, slab=slab, noise_fraction=noise)
        files = cases.preprocess(root, name, ct, mr, config, slab_registration if slab else None)
        records.append(files["record"])
        if anatomy == "own":
            errors[name] = cases.error_mm(sitk.ReadTransform(files["transform"]), motion.GetInverse(), ct)
        if name == "correct":
            for offset, iterations in FAILED:
                failed, error = cases.failed_registration(files, motion.GetInverse(), root, f"failed_{offset:.0f}mm",
                                                          offset, iterations)
                records.append(failed["record"])
                errors[f"failed_{offset:.0f}mm"] = error
        print(json.loads(Path(records[-1]).read_text()), flush=True)
    table = collect_registration_qa(records, {k: v for k, v in settings.items() if k != "keep_flagged"},
                                    settings["keep_flagged"])
    table["error_mm"] = table["patient"].map(errors)
    print(table.drop(columns="reason").to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
