"""The learned pixel change detector at run time: its ONNX network under onnxruntime.

Two networks ship (``swc_rs/data/change_*.onnx``, each with its card ``.json``; trained
by :mod:`swc_rs.change.train`): ``highres`` for RGB / VNIR imagery of 0.3–5 m (it reads
red, green, blue) and ``multispectral`` for Sentinel-2 / Landsat at 8–40 m (blue, green,
red, nir, swir1, swir2). :func:`select_detector` picks the one that fits a pair's bands
and pixel size; where none fits, detect uses the rules and says so in ``run_info``.

A model file is used only when its SHA-256 equals the one in its card, and the card
names a known family and bands: a tampered, truncated or unknown file is refused
(:class:`~swc_rs.errors.ModelError`, exit 2), never half-used.

Each date is standardised by its own scene statistics (per-band mean and standard
deviation over the calibration's sample windows: :func:`scene_stats`), so the network
sees the same input whatever the window, and neither a sensor's scaling nor a gain or
offset between the dates is read as change. Windows are read with a halo of
``halo_px`` (≥ the network's receptive radius) starting at multiples of its stride:
the probabilities of a window's core do not depend on where the windows fall.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swc_rs.errors import ModelError

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1] / "data"
#: The shipped networks, by family.
SHIPPED = {"highres": DATA / "change_highres.onnx", "multispectral": DATA / "change_multispectral.onnx"}
#: Bands each family reads, in order.
FAMILY_ROLES = {"highres": ("red", "green", "blue"),
                "multispectral": ("blue", "green", "red", "nir", "swir1", "swir2")}
#: Pixel sizes (m) each family is used for by default (wider than it was trained across,
#: narrower than the other family's).
FAMILY_PIXEL_M = {"highres": (0.1, 5.0), "multispectral": (8.0, 40.0)}


@dataclass(frozen=True)
class SceneStats:
    """Per-band mean and standard deviation of each date over the scene sample (role order of the pair)."""

    before_mean: np.ndarray
    before_std: np.ndarray
    after_mean: np.ndarray
    after_std: np.ndarray


def scene_stats(reads: list, bands: int) -> SceneStats:
    """:class:`SceneStats` of the calibration's ``(before, after, valid)`` sample windows.

    One band of one date at a time (its valid pixels, float32, then the moments in
    float64): the calibration's largest temporaries were this function's float64 copies
    of every band at once (~150 MB for 9 windows of 512² px and 4 bands, and 0.4 s).
    The float64 sums run in another order than over the stacked bands, so they may
    differ in their last bits; the float32 statistics were the same on the bench scenes
    (docs/2026-12-07-speed.md).
    """
    flat = [valid.ravel() for _, _, valid in reads]

    def moments(date: int):
        mean, std = np.zeros(bands, np.float32), np.ones(bands, np.float32)
        for k in range(bands):
            x = np.concatenate([read[date][k].ravel()[v] for read, v in zip(reads, flat, strict=True)]) \
                if reads else np.zeros(0, np.float32)
            if x.size == 0:  # no valid pixel in the sample: every band alike
                return np.zeros(bands, np.float32), np.ones(bands, np.float32)
            mean[k] = x.mean(dtype=np.float64)
            std[k] = max(x.std(dtype=np.float64), 1e-6)
        return mean, std

    (bm, bs), (am, as_) = moments(0), moments(1)
    return SceneStats(bm, bs, am, as_)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(path: Path) -> dict:
    """The card of ``path`` (``.json`` beside it), checked against the file; ModelError otherwise."""
    path = Path(path)
    card_path = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError("the change model file does not exist", path=path,
                         fix="give an .onnx file written by `make model` (python -m swc_rs.change.train), or leave "
                             "--change-model out to use the shipped one")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"the model's card {card_path.name} is missing or unreadable ({error})", path=path,
                         fix="keep the .json card that `make model` writes beside the .onnx file") from None
    family = card.get("family")
    if family not in FAMILY_ROLES or list(card.get("roles", [])) != list(FAMILY_ROLES[family]):
        raise ModelError(f"the card names an unknown model family or bands ({family!r}, {card.get('roles')})",
                         path=path, fix="use a model written by this version's `make model`")
    actual = _sha256(path)
    if actual != card.get("onnx_sha256"):
        raise ModelError(f"the file's SHA-256 {actual[:12]}… differs from its card's {str(card.get('onnx_sha256'))[:12]}…: "
                         "the file was changed or damaged", path=path,
                         fix="restore the model from the release (or retrain it with `make model`); a changed model "
                             "is never used")
    return card


class LearnedDetector:
    """P(change) of a window pair from one ONNX network (see the module docstring)."""

    def __init__(self, path: Path, threads: int = 1):
        self.path = Path(path)
        self.card = read_card(self.path)
        self.family: str = self.card["family"]
        self.roles: tuple[str, ...] = tuple(self.card["roles"])
        self.threshold = float(self.card.get("threshold", 0.5))
        self.stride = int(self.card["stride"])
        self.halo_px = int(self.card["halo_px"])
        self.model_id = f"{self.family}-{self.card['onnx_sha256'][:12]}"
        self._threads = max(1, int(threads))
        self._session = None

    def _run(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # noqa: BLE001 - onnxruntime's own exception types
                raise ModelError(f"onnxruntime cannot load the network ({str(error).splitlines()[0]})", path=self.path,
                                 fix="restore the model from the release or retrain it with `make model`") from None
        return self._session.run(None, {"before": before, "after": after})[0]

    def uses_seeds(self, norm, config) -> bool:
        """The network's patches are kept as found (no seeding)."""
        return False

    def candidates(self, w, norm, config):
        """The candidate mask of a window (:mod:`swc_rs.change.detectors`): P(change) ≥
        ``[change] learned_threshold`` on clear ground; no seeds."""
        from swc_rs.change.detectors import clear_ground

        prob = self.probability(w.before, w.after, w.valid, w.roles, norm.scene)
        return (prob >= config.change.learned_threshold) & clear_ground(w, norm, config), None

    def fits(self, roles, pixel_m: float) -> bool:
        lo, hi = FAMILY_PIXEL_M[self.family]
        return set(self.roles) <= set(roles) and lo <= pixel_m <= hi

    def probability(self, before: np.ndarray, after: np.ndarray, valid: np.ndarray, roles, stats: SceneStats) -> np.ndarray:
        """P(change), float32 ``(h, w)``, of a window read at a stride-aligned offset.

        ``before``/``after``: ``(len(roles), h, w)`` as read (AFTER not normalised);
        ``stats``: the scene's :class:`SceneStats` in the same role order. Pixels without
        data on either date get 0.
        """
        index = [list(roles).index(r) for r in self.roles]
        h, w = valid.shape
        ph, pw = (-h) % self.stride, (-w) % self.stride

        invalid = ~valid

        def prepare(img, mean, std):
            if img.dtype == np.float32 and mean.dtype == np.float32 and std.dtype == np.float32:
                # In place on the one copy the band selection makes: the same float32
                # operations as the expression below, without its three temporaries.
                x = img[index]
                x -= mean[index, None, None]
                x /= std[index, None, None]
                x[:, invalid] = 0.0
            else:
                x = (img[index] - mean[index, None, None]) / std[index, None, None]
                x = np.where(valid, x, 0.0).astype(np.float32)
            if ph or pw:
                x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > 1 else "edge")
            return x[None]

        logit = self._run(prepare(before, stats.before_mean, stats.before_std),
                          prepare(after, stats.after_mean, stats.after_std))[0, 0, :h, :w]
        prob = 1.0 / (1.0 + np.exp(-logit))
        prob[invalid] = 0.0
        return prob.astype(np.float32, copy=False)


def select_detector(spec: str | Path | None, roles, pixel_m: float, threads: int = 1,
                    networks=tuple(SHIPPED)) -> tuple[LearnedDetector | None, str]:
    """The detector for a pair and why: ``(detector or None for the rules, reason)``.

    ``spec``: ``"auto"`` (the shipped network of ``networks`` that fits the bands and
    pixel size, else the rules), ``"rules"``, or the path of an ONNX model (refused when
    it does not fit).
    """
    if spec in (None, "rules"):
        return None, "rules requested (--rules)"
    if spec != "auto":
        detector = LearnedDetector(Path(spec), threads)
        if not detector.fits(roles, pixel_m):
            lo, hi = FAMILY_PIXEL_M[detector.family]
            raise ModelError(f"the change model is for {detector.family} imagery ({', '.join(detector.roles)} at "
                             f"{lo:g}–{hi:g} m), this pair has {', '.join(roles)} at {pixel_m:.2f} m", path=spec,
                             fix="give a model of this sensor's family, or leave --change-model out to pick one")
        return detector, f"{detector.family} network given by --change-model"
    for family, path in SHIPPED.items():
        lo, hi = FAMILY_PIXEL_M[family]
        if set(FAMILY_ROLES[family]) <= set(roles) and lo <= pixel_m <= hi:
            if family not in networks:
                return None, f"the {family} network is switched off ([change] networks = {' '.join(networks)!r}): rules used"
            if not path.exists():
                return None, f"the shipped {family} network is not installed ({path.name}): rules used"
            return LearnedDetector(path, threads), f"{family} network (bands and {pixel_m:.2f} m pixels fit it)"
    return None, (f"no shipped network fits {', '.join(roles)} at {pixel_m:.2f} m "
                  "(highres: red/green/blue at 0.1–5 m; multispectral: blue…swir2 at 8–40 m): rules used")
