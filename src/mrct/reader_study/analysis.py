"""Analysis of the reader study: answers checked against the key, Tables V and VI, classification, agreement.

The study showed each drawn test slice twice, once as ground truth and once as the best model's
output, and every reader judged each image (real or synthetic) and rated its realism from 1 to 4.

* Table V pools every reader's ratings per direction and source (the model, or ``ground truth``):
  n ratings, realism mean and sample STD (ddof 1), and the % of images judged real.
* Table VI, as the study defines it, is per reader and direction: Pearson's r, Lin's
  bias-correction factor C_b (``ccc_cb``) and Lin's concordance correlation coefficient
  CCC = r x C_b, pairing the realism rating of a slice's synthetic image with the rating of the
  same slice's ground-truth image. The study's Table VI calls C_b "accuracy" (its values,
  0.94-1.00, are C_b's: it measures how far the two series' means and spreads differ, not how
  often a reader was right; a reader rating at random scores about 1). C_b says nothing about
  telling real from synthetic.
* The real/synthetic classification (not in the study's tables), per reader and direction:
  ``classification_accuracy`` over all images of the direction, ``sensitivity`` and
  ``specificity`` for spotting synthetic images (positive = synthetic).
* Agreement between readers (beyond the study), per direction and reader pair: Cohen's kappa on
  real/synthetic, and quadratic-weighted Cohen's kappa on realism (the 1-4 scale is ordinal, and
  quadratic weights make kappa comparable to an intraclass correlation).

Answer files are validated against the key before any statistic: a file that does not match
(wrong or missing image ids, duplicates, values out of range, a file made for another key)
raises :class:`AnswersError` naming the file and the problem.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from mrct.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

KEY_COLUMNS = ("image_id", "truth", "direction", "model", "patient", "slice")
ANSWER_COLUMNS = ("reader", "image_id", "judged", "realism")
TRUTHS = ("real", "synthetic")
REALISM = (1, 2, 3, 4)
GROUND_TRUTH = "ground truth"
TABLE_V_COLUMNS = ["direction", "source", "n", "realism_mean", "realism_std", "judged_real_pct"]
# The interface's columns first, in its order; then the number of slice pairs and Pearson's p.
TABLE_VI_COLUMNS = ["reader", "direction", "pearson", "ccc_cb", "ccc", "n_pairs", "pearson_p"]
CLASSIFICATION_COLUMNS = ["reader", "direction", "classification_accuracy", "sensitivity", "specificity", "n_images"]
AGREEMENT_COLUMNS = ["direction", "reader_a", "reader_b", "n", "kappa_judged", "kappa_realism_quadratic"]
_EXAMPLES = 5


class AnswersError(ValueError):
    """An answers file (or the key) does not match what the analysis expects; names the file."""


def _examples(values: Iterable[object]) -> str:
    values = sorted({str(v) for v in values})
    shown = ", ".join(values[:_EXAMPLES])
    return f"{shown}, ... ({len(values)} in all)" if len(values) > _EXAMPLES else shown


def _read_csv(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise AnswersError(f"{path}: {what} not found")
    try:
        # utf-8-sig: spreadsheet programs often save CSV with a byte-order mark
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise AnswersError(f"{path}: expected a CSV {what} with columns {', '.join(columns)}; "
                           f"could not read it ({error})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnswersError(f"{path}: expected columns {', '.join(columns)}; missing {', '.join(missing)} "
                           f"(got {', '.join(frame.columns) or 'none'})")
    frame = frame[list(columns)].apply(lambda column: column.str.strip())
    if frame.empty:
        raise AnswersError(f"{path}: {what} has a header but no rows")
    return frame


def read_key(path: str | Path) -> pd.DataFrame:
    """The questionnaire key; every (direction, patient, slice) must be shown once real, once synthetic."""
    path = Path(path)
    key = _read_csv(path, KEY_COLUMNS, "reader-study key")
    duplicated = key["image_id"][key["image_id"].duplicated()]
    if len(duplicated):
        raise AnswersError(f"{path}: expected unique image ids, got duplicates: {_examples(duplicated)}")
    bad = key.loc[~key["truth"].isin(TRUTHS), "truth"]
    if len(bad):
        raise AnswersError(f"{path}: column truth must be real or synthetic, got {_examples(bad)}")
    counts = key.groupby(["direction", "patient", "slice"])["truth"].agg(lambda t: tuple(sorted(t)))
    unpaired = counts[counts != TRUTHS]
    if len(unpaired):
        shown = _examples(f"{d}/{p}/{s}: {'+'.join(t)}" for (d, p, s), t in unpaired.items())
        raise AnswersError(f"{path}: every slice must appear once real and once synthetic, got {shown}")
    return key


def _check_values(path: Path, answers: pd.DataFrame) -> pd.DataFrame:
    """Normalise judged (lower case) and realism (int); raise on anything else."""
    empty_reader = answers["reader"] == ""
    if empty_reader.any():
        raise AnswersError(f"{path}: column reader is empty in {int(empty_reader.sum())} row(s) "
                           f"(first at data row {int(np.flatnonzero(empty_reader)[0]) + 1})")
    judged = answers["judged"].str.lower()
    bad = answers.loc[~judged.isin(TRUTHS), "judged"]
    if len(bad):
        raise AnswersError(f"{path}: column judged must be real or synthetic, got {_examples(bad)}")
    realism = pd.to_numeric(answers["realism"], errors="coerce")
    bad = answers.loc[~realism.isin(REALISM), "realism"]
    if len(bad):
        raise AnswersError(f"{path}: column realism must be an integer from 1 to 4, got {_examples(bad)}")
    return answers.assign(judged=judged, realism=realism.astype(int))


def _check_against_key(path: Path, answers: pd.DataFrame, key: pd.DataFrame, key_path: Path) -> None:
    known = set(key["image_id"])
    unknown = answers.loc[~answers["image_id"].isin(known), "image_id"]
    if len(unknown) == len(answers):
        raise AnswersError(f"{path}: none of its {len(answers)} image ids is in the key {key_path}: answers to "
                           f"another questionnaire (another seed or key)? e.g. {_examples(unknown)}")
    if len(unknown):
        raise AnswersError(f"{path}: {unknown.nunique()} image id(s) not in the key {key_path}: {_examples(unknown)}")
    duplicated = answers[answers.duplicated(["reader", "image_id"])]
    if len(duplicated):
        shown = _examples(f"{r}/{i}" for r, i in zip(duplicated["reader"], duplicated["image_id"]))
        raise AnswersError(f"{path}: expected one answer per reader and image, got duplicates: {shown}")
    for reader, given in answers.groupby("reader")["image_id"]:
        missing = known - set(given)
        if missing:
            raise AnswersError(f"{path}: reader {reader!r} answered {len(given)} of {len(known)} images of the "
                               f"key {key_path}; missing {_examples(missing)}")


def read_answers(path: str | Path, key: pd.DataFrame, key_path: str | Path = "the key") -> pd.DataFrame:
    """One answers file, validated against the key: every reader in it answered every image once."""
    path = Path(path)
    answers = _check_values(path, _read_csv(path, ANSWER_COLUMNS, "answers file"))
    _check_against_key(path, answers, key, Path(key_path))
    return answers.assign(file=path.name)


def read_all_answers(paths: Sequence[str | Path], key: pd.DataFrame, key_path: str | Path) -> pd.DataFrame:
    """Every answers file; a reader must not appear in two files (answers would count twice)."""
    frames = [read_answers(p, key, key_path) for p in sorted(paths, key=str)]
    if not frames:
        return pd.DataFrame(columns=[*ANSWER_COLUMNS, "file"])
    answers = pd.concat(frames, ignore_index=True)
    files = answers.groupby("reader")["file"].unique()
    twice = files[files.map(len) > 1]
    if len(twice):
        reader, names = next(iter(twice.items()))
        raise AnswersError(f"reader {reader!r} appears in several answers files: {', '.join(sorted(names))}; "
                           "keep one file per reader")
    return answers


def ccc(x: Sequence[float], y: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient (Lin 1989), with population (1/n) moments.

    Hand-written: neither scipy nor scikit-learn provides it. NaN when it is undefined (fewer than
    two pairs, or both series constant and equal).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"ccc: expected two 1-D series of one length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        return float("nan")
    covariance = np.mean((x - x.mean()) * (y - y.mean()))
    denominator = x.var() + y.var() + (x.mean() - y.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else float("nan")


def ccc_cb(x: Sequence[float], y: Sequence[float]) -> float:
    """Lin's bias-correction factor C_b = 2 sx sy / (sx^2 + sy^2 + (mx - my)^2) (population moments).

    Lin (1989) writes it 2 / (v + 1/v + u^2) with v = sx / sy and u = (mx - my) / sqrt(sx sy):
    1 when the two series have equal means and spreads, whatever their correlation; CCC = r x C_b.
    NaN when a series is constant (v or u is then undefined, as Pearson's r is) or shorter than 2.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"ccc_cb: expected two 1-D series of one length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(2 * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """scipy's Pearson r and p; NaN (not a warning) when a series is constant or too short."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    result = stats.pearsonr(x, y)
    return float(result.statistic), float(result.pvalue)


def _labelled(answers: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    return answers.merge(key, on="image_id", how="inner", validate="many_to_one")


def table_v(answers: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """Realism mean, sample STD and % judged real per direction and source, all readers pooled."""
    data = _labelled(answers, key)
    if data.empty:
        return pd.DataFrame(columns=TABLE_V_COLUMNS)
    data = data.assign(source=np.where(data["truth"] == "real", GROUND_TRUTH, data["model"]),
                       judged_real=(data["judged"] == "real") * 100.0)
    table = data.groupby(["direction", "source"], sort=True).agg(
        n=("realism", "size"), realism_mean=("realism", "mean"),
        realism_std=("realism", lambda r: r.std(ddof=1)), judged_real_pct=("judged_real", "mean"))
    return table.reset_index()[TABLE_V_COLUMNS]


def reader_scores(data: pd.DataFrame) -> dict[str, float]:
    """Table VI's figures for one reader and direction (rows: that reader's answers, with the key)."""
    pairs = data.pivot_table(index=["patient", "slice"], columns="truth", values="realism", aggfunc="first")
    synthetic, real = pairs["synthetic"].to_numpy(float), pairs["real"].to_numpy(float)
    pearson, pearson_p = _pearson(synthetic, real)
    return {"n_pairs": len(pairs), "pearson": pearson, "pearson_p": pearson_p,
            "ccc_cb": ccc_cb(synthetic, real), "ccc": ccc(synthetic, real)}


def classification_scores(data: pd.DataFrame) -> dict[str, float]:
    """Real/synthetic judgements of one reader and direction against the truth (positive = synthetic)."""
    truth_synthetic, said_synthetic = data["truth"] == "synthetic", data["judged"] == "synthetic"
    return {
        "n_images": len(data),
        "classification_accuracy": float((truth_synthetic == said_synthetic).mean()),
        "sensitivity": float(said_synthetic[truth_synthetic].mean()),
        "specificity": float((~said_synthetic)[~truth_synthetic].mean()),
    }


def _per_reader(answers: pd.DataFrame, key: pd.DataFrame, scores, columns: list[str]) -> pd.DataFrame:
    data = _labelled(answers, key)
    rows = [{"reader": reader, "direction": direction, **scores(group)}
            for (reader, direction), group in data.groupby(["reader", "direction"], sort=True)]
    return pd.DataFrame(rows, columns=columns)


def table_vi(answers: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """The study's Table VI per reader and direction: Pearson's r, Lin's C_b and CCC of paired ratings."""
    return _per_reader(answers, key, reader_scores, TABLE_VI_COLUMNS)


def classification(answers: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """Per reader and direction: classification accuracy, sensitivity and specificity (real/synthetic)."""
    return _per_reader(answers, key, classification_scores, CLASSIFICATION_COLUMNS)


def _kappa(a: pd.Series, b: pd.Series, **kwargs: object) -> float:
    """scikit-learn's Cohen's kappa; NaN (not a warning) when it is 0/0 (both readers constant and equal)."""
    if a.nunique() == 1 and b.nunique() == 1:
        return float("nan")
    return float(cohen_kappa_score(a, b, **kwargs))


def agreement(answers: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa (judged) and quadratic-weighted kappa (realism) per direction and reader pair."""
    data = _labelled(answers, key)
    rows = []
    for direction, group in data.groupby("direction", sort=True):
        wide = group.pivot(index="image_id", columns="reader", values=["judged", "realism"])
        for reader_a, reader_b in itertools.combinations(sorted(group["reader"].unique()), 2):
            rows.append({
                "direction": direction, "reader_a": reader_a, "reader_b": reader_b, "n": len(wide),
                "kappa_judged": _kappa(wide["judged"][reader_a], wide["judged"][reader_b], labels=list(TRUTHS)),
                "kappa_realism_quadratic": _kappa(wide["realism"][reader_a].astype(int),
                                                  wide["realism"][reader_b].astype(int),
                                                  labels=list(REALISM), weights="quadratic"),
            })
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def how_to_text(answers_dir: str | Path) -> str:
    """What to do when no answers exist yet (shown in the note and the report)."""
    return (
        f"No reader-study answers found in {answers_dir}/. To run the study: give each reader "
        "results/reader_study/questionnaire.html (one self-contained page: it works offline, from a USB "
        "stick); each reader enters a name, answers every image (real or synthetic, realism 1-4) and "
        f"presses 'export answers'. Put the exported CSV files (columns {', '.join(ANSWER_COLUMNS)}; one "
        f"file per reader) into {answers_dir}/ and rerun snakemake: Tables V and VI, the real/synthetic "
        "classification and the agreement between readers are then computed and shown in the report. Keep results/reader_study/key.csv "
        "away from the readers."
    )


def analyse(key_path: str | Path, answer_paths: Sequence[str | Path], answers_dir: str | Path
            ) -> dict[str, pd.DataFrame | str]:
    """Table V, Table VI, classification, agreement and a short note (markdown) from the key and answers."""
    key = read_key(key_path)
    answers = read_all_answers(answer_paths, key, key_path)
    if answers.empty:
        return {"table_v": pd.DataFrame(columns=TABLE_V_COLUMNS), "table_vi": pd.DataFrame(columns=TABLE_VI_COLUMNS),
                "classification": pd.DataFrame(columns=CLASSIFICATION_COLUMNS),
                "agreement": pd.DataFrame(columns=AGREEMENT_COLUMNS), "note": how_to_text(answers_dir)}
    readers = sorted(answers["reader"].unique())
    files = sorted(answers["file"].unique())
    note = (f"{len(readers)} reader(s) ({', '.join(readers)}) from {len(files)} answers file(s) in "
            f"{answers_dir}/ ({', '.join(files)}); {key['image_id'].nunique()} images in the key.")
    log.info(note)
    return {"table_v": table_v(answers, key), "table_vi": table_vi(answers, key),
            "classification": classification(answers, key), "agreement": agreement(answers, key), "note": note}


#: The CSV tables of ``write_analysis``, by output name.
TABLES = ("table_v", "table_vi", "classification", "agreement")


def write_analysis(key_path: str | Path, answer_paths: Sequence[str | Path], answers_dir: str | Path,
                   outputs: dict[str, str | Path]) -> None:
    """Write the TABLES (CSV) and the note (text) atomically (``outputs`` maps these names to paths)."""
    results = analyse(key_path, answer_paths, answers_dir)
    for name in TABLES:
        write_text_atomic(outputs[name], results[name].to_csv(index=False, float_format="%.6g"))
    write_text_atomic(outputs["note"], results["note"] + "\n")
