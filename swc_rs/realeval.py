"""Pixel scores of a change mask against a human change label, with a pixel tolerance.

Pure library for ``benchmarks/eval_real.py`` (``make eval-real``): arrays in, numbers
out; no file I/O, no printing.

Label codes (``../shared/eval/real/*/label.tif``): 1 change, 0 no change,
255 not labelled. Pixels labelled 255 are ignored everywhere: a prediction there is
neither right nor wrong, and it cannot vouch for a nearby labelled pixel.

Definitions, with tolerance ``t`` pixels (default 1, i.e. the 3×3 neighbourhood;
in general the (2t+1)×(2t+1) square, Chebyshev distance ≤ t)
------------------------------------------------------------------------------------
predicted
    Pixels where the prediction is True and the label is not 255.
labelled change
    Pixels where the label is 1.
precision
    predicted pixels lying within ``t`` px of a labelled change pixel / predicted pixels.
recall
    labelled change pixels lying within ``t`` px of a predicted pixel / labelled change
    pixels.
F1
    2·P·R / (P + R).

Zero denominators: precision is ``None`` when nothing is predicted, recall is
``None`` when nothing is labelled change. F1 is ``None`` only when both are ``None``
(nothing to score); otherwise a ``None`` counts as 0 and F1 = 0 when P + R = 0.
With ``t = 0`` the scores are the usual pixel precision, recall and F1.
A tolerance makes both P and R optimistic compared with ``t = 0`` (a 1-px shift of
the whole prediction still scores 1.0): it forgives the 0–1 px misregistration of the
OSCD pairs, not boundary errors of several pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from swc_rs.errors import InputError

CHANGE = 1
NO_CHANGE = 0
UNLABELLED = 255

__all__ = ["CHANGE", "NO_CHANGE", "UNLABELLED", "PixelScores", "pixel_scores", "mean_scores"]


@dataclass(frozen=True)
class PixelScores:
    """Tolerant pixel scores of one prediction (see the module docstring).

    precision, recall, f1 : float | None
    predicted : int
        Predicted pixels (label != 255).
    predicted_hit : int
        Of those, within the tolerance of a labelled change pixel.
    labelled : int
        Labelled change pixels.
    labelled_hit : int
        Of those, within the tolerance of a predicted pixel.
    scored : int
        Pixels with label != 255.
    tolerance : int
        In pixels.
    """

    precision: float | None
    recall: float | None
    f1: float | None
    predicted: int
    predicted_hit: int
    labelled: int
    labelled_hit: int
    scored: int
    tolerance: int

    def to_dict(self) -> dict:
        return asdict(self)


def _dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
    if tolerance == 0 or not mask.any():
        return mask
    size = 2 * tolerance + 1
    return ndimage.binary_dilation(mask, structure=np.ones((size, size), dtype=bool))


def pixel_scores(prediction: np.ndarray, label: np.ndarray, *, tolerance: int = 1) -> PixelScores:
    """Precision, recall and F1 of ``prediction`` against ``label`` with a pixel tolerance.

    Parameters
    ----------
    prediction : ndarray of bool (or 0/1), shape (H, W)
        Predicted change.
    label : ndarray of uint8, shape (H, W)
        1 change, 0 no change, 255 not labelled (ignored). Other values are an error.
    tolerance : int
        Allowed offset in pixels (Chebyshev distance); 1 = 3×3 neighbourhood.

    Returns
    -------
    PixelScores

    Raises
    ------
    InputError
        Shapes differ, a negative tolerance, or label values other than 0, 1, 255.
    """
    prediction = np.asarray(prediction).astype(bool)
    label = np.asarray(label)
    if prediction.shape != label.shape or prediction.ndim != 2:
        raise InputError(
            f"prediction has shape {prediction.shape} and label {label.shape}; expected the same (H, W)",
            fix="rasterise or crop the prediction onto the label grid",
        )
    if int(tolerance) != tolerance or tolerance < 0:
        raise InputError(f"tolerance {tolerance!r} is not a whole number of pixels ≥ 0", fix="use 0, 1, 2 ...")
    tolerance = int(tolerance)
    bad = np.setdiff1d(np.unique(label), [NO_CHANGE, CHANGE, UNLABELLED])
    if bad.size:
        raise InputError(
            f"label holds values {bad.tolist()[:5]} besides 0, 1 and 255",
            fix="code the label 1 change, 0 no change, 255 not labelled",
        )
    scored = label != UNLABELLED
    predicted = prediction & scored
    labelled = label == CHANGE

    n_predicted = int(predicted.sum())
    n_labelled = int(labelled.sum())
    predicted_hit = int((predicted & _dilate(labelled, tolerance)).sum())
    labelled_hit = int((labelled & _dilate(predicted, tolerance)).sum())

    precision = predicted_hit / n_predicted if n_predicted else None
    recall = labelled_hit / n_labelled if n_labelled else None
    if precision is None and recall is None:
        f1 = None
    else:
        p, r = precision or 0.0, recall or 0.0
        f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return PixelScores(
        precision=precision,
        recall=recall,
        f1=f1,
        predicted=n_predicted,
        predicted_hit=predicted_hit,
        labelled=n_labelled,
        labelled_hit=labelled_hit,
        scored=int(scored.sum()),
        tolerance=tolerance,
    )


def mean_scores(scores: list[PixelScores | None]) -> dict[str, float | None]:
    """Unweighted means of precision, recall and F1 over pairs (macro average).

    ``None`` entries (a method that failed) and ``None`` values are skipped; a mean over
    nothing is ``None``.
    """
    out: dict[str, float | None] = {}
    for key in ("precision", "recall", "f1"):
        values = [getattr(s, key) for s in scores if s is not None and getattr(s, key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out
