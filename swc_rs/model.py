"""The learned disturbance model: pixel mask + patch typing, saved and loaded with skops.

A model file is a skops archive of a plain ``dict`` (no custom class, no pickle)::

    {"format": "swc-rs-model", "format_version": 1,
     "payload": <bytes: a nested skops archive of the estimators>,
     "sha256": <hex SHA-256 of payload>,
     "card": <dict: model id, training data, metrics, licence ...>}

The payload holds, per band-set family (``rgb``, ``vnir``, ``vnir+swir``; see
:func:`swc_rs.features.band_family`), a two-stage pixel model — a cheap gate on the
window z-score of the change magnitude, then a small gradient-boosted tree model on
the gated pixels' features with a probability threshold — and one calibrated patch
classifier on :data:`swc_rs.classify.FEATURES`.

Loading checks, in order: the file is a readable skops archive; every type in it (and
in the payload) is on the explicit allow-list :data:`TRUSTED_TYPES`; the payload's
SHA-256 matches the recorded one. Any failure raises :class:`~swc_rs.errors.ModelError`
(exit code 2) naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from swc_rs import codes
from swc_rs.classify import FEATURES
from swc_rs.errors import ModelError
from swc_rs.features import FEATURE_NAMES, band_family, gate_mask, pixel_features

log = logging.getLogger(__name__)

_REPO_MODEL = Path(__file__).resolve().parent / "data" / "qtype_model.skops"

FORMAT = "swc-rs-model"
FORMAT_VERSION = 1

#: Every non-builtin type a swc-rs model file may contain. Anything else is refused.
TRUSTED_TYPES = (
    "builtins.bytes",
    "collections.OrderedDict",
    "numpy.dtype",
    "numpy.bool_",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.uint8",
    "numpy.uint64",
    "numpy.random._generator.Generator",
    "numpy.random._pcg64.PCG64",
    "numpy.ndarray",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.preprocessing._label.LabelEncoder",
)


def _skops_io():
    """``skops.io``, imported without its default allow-list of every scikit-learn estimator.

    Importing ``skops.io`` runs ``sklearn.utils.all_estimators()``, which imports every
    scikit-learn module (~0.45 s of each detect's start-up, and again in every batch
    worker) only to build skops's default list of trusted estimator types. swc-rs never
    relies on that list: every load passes its own explicit ``trusted`` types, checked
    against :data:`TRUSTED_TYPES` first. So the list is built empty, which only makes
    skops stricter. When ``skops.io`` is already imported it is returned as it is.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import sklearn.utils

    every_estimator = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = every_estimator
    return skops.io


#: Patch classes: QTYPE, or 非生产建设项目 split by its likely X_REASON.
NOT_PROJECT_PREFIX = codes.NOT_PROJECT + "|"


def default_model_path() -> Path | None:
    """The shipped model, when there is one; None means the documented rules."""
    return _REPO_MODEL if _REPO_MODEL.exists() else None


# -- save / load ------------------------------------------------------------------------
def payload_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def save_model(bundle: dict, card: dict, path: str | Path) -> Path:
    """Write ``bundle`` (plain dict of estimators, arrays and numbers) and ``card`` to ``path``.

    Returns the path. The card gets ``sha256`` (of the payload) and ``model_id``
    (``bundle["model_id"]``) filled in.
    """
    import skops.io as sio

    payload = sio.dumps(bundle)
    card = dict(card)
    card["sha256"] = payload_digest(payload)
    card["model_id"] = bundle["model_id"]
    outer = {"format": FORMAT, "format_version": FORMAT_VERSION, "payload": payload, "sha256": card["sha256"], "card": card}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(outer, path)
    return path


#: Plain containers and scalars skops stores as JSON.
_BUILTIN_TYPES = frozenset(f"builtins.{name}" for name in (
    "dict", "list", "tuple", "str", "int", "float", "bool", "NoneType", "bytes", "bytearray", "slice", "complex", "set",
    "frozenset", "type"))


def archive_types(data: bytes) -> set[str]:
    """Every ``module.Class`` (and function) named anywhere in a skops archive's schema.

    skops's own ``get_untrusted_types`` leaves out the types it trusts by default (all of
    scikit-learn); swc-rs checks the full list against its own allow-list instead.
    """
    import io
    import json

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
                content = node.get("content")
                if node.get("__loader__") in ("FunctionNode", "TypeNode", "MethodNode") and isinstance(content, dict):
                    name = content.get("function") or content.get("__class__")
                    if content.get("module_path") and name:
                        found.add(f"{content['module_path']}.{name}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _checked_load(loader, source, path, what: str):

    try:
        # Our own walk of the schema names every type (skops's get_untrusted_types would
        # add nothing, at ~1 s a call); skops's loader still refuses any type not passed.
        untrusted = archive_types(source["data"]) - _BUILTIN_TYPES
    except Exception as err:  # a damaged zip, a foreign file
        raise ModelError(
            f"is not a readable skops model ({type(err).__name__}: {err})",
            path=path,
            fix="retrain it with `swc-rs train` or `make model`, or run with --rules",
        ) from err
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise ModelError(
            f"{what} holds types that are not on swc-rs's allow-list: {', '.join(unexpected)}",
            path=path,
            fix="only load models written by `swc-rs train`; retrain it, or run with --rules",
        )
    try:
        return loader(trusted=sorted(untrusted))
    except Exception as err:
        raise ModelError(
            f"cannot be loaded ({type(err).__name__}: {err})",
            path=path,
            fix="retrain it with `swc-rs train` or `make model`, or run with --rules",
        ) from err


def load_bundle(path: str | Path, data: bytes | None = None) -> tuple[dict, dict]:
    """The verified ``(bundle, card)`` of a model file (``data``: its bytes, when already read).

    Raises
    ------
    ModelError
        Missing or unreadable file, a type outside :data:`TRUSTED_TYPES`, a payload whose
        SHA-256 does not match the recorded one, or an unknown format.
    """
    sio = _skops_io()

    path = Path(path)
    if not path.is_file():
        raise ModelError("model file does not exist", path=path, fix="check the path, or run with --rules")
    try:
        data = path.read_bytes() if data is None else data
    except OSError as err:
        raise ModelError(f"cannot be read ({err})", path=path, fix="check the file's permissions") from err
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ModelError("is not a skops archive", path=path, fix="give a model written by `swc-rs train`, or run with --rules")
    outer = _checked_load(lambda trusted: sio.loads(data, trusted=trusted), {"data": data}, path, "the file")
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise ModelError(
            f"is not a swc-rs model (format {outer.get('format') if isinstance(outer, dict) else type(outer).__name__!r}, expected {FORMAT!r})",
            path=path, fix="give a model written by `swc-rs train`, or run with --rules")
    if outer.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"has model format version {outer.get('format_version')!r}; this swc-rs reads version {FORMAT_VERSION}",
            path=path, fix="retrain the model with this swc-rs (`swc-rs train` or `make model`)")
    payload = outer.get("payload")
    if not isinstance(payload, bytes) or payload_digest(payload) != outer.get("sha256"):
        raise ModelError(
            "the model payload does not match its recorded SHA-256 (the file was modified after training)",
            path=path, fix="restore the original file or retrain it; never edit model files by hand")
    bundle = _checked_load(lambda trusted: sio.loads(payload, trusted=trusted), {"data": payload}, path, "the model payload")
    if not isinstance(bundle, dict) or "pixel" not in bundle:
        raise ModelError("the model payload has no pixel models", path=path, fix="retrain it with `swc-rs train`")
    card = dict(outer.get("card") or {})
    return bundle, card


def pixel_families_hint(path: str | Path) -> list[str] | None:
    """The band-set families of a model file's pixel models, read from the skops schemas
    of the file and its payload without building any object (milliseconds, where
    :func:`load_model` takes seconds with its imports), or None when they cannot be read.

    Only a hint, so that detect can start its windows while the model loads: the file is
    verified by :func:`load_model`, and detect checks that the loaded model agrees. The
    answer is kept by the file's path, size and modification time: parsing the payload's
    schema takes ~0.1 s, which a batch worker would pay for every tile.
    """
    import json

    try:
        stat = Path(path).stat()
        key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None
    if key in _HINTS:
        return list(_HINTS[key])
    try:
        with zipfile.ZipFile(path) as outer:
            entries = json.loads(outer.read("schema.json"))["content"]
            with zipfile.ZipFile(io.BytesIO(outer.read(entries["payload"]["file"]))) as inner:
                bundle = json.loads(inner.read("schema.json"))["content"]
        pixel = bundle["pixel"]
        if pixel.get("__class__") != "dict" or not isinstance(pixel.get("content"), dict):
            return None
        hint = sorted(pixel["content"])
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None
    _HINTS.clear()  # one model file at a time, like _LOADED
    _HINTS[key] = hint
    return list(hint)



def card_hint(path: str | Path) -> dict | None:
    """The card of a model file (model id, creation time, version ...), read from the skops
    schema without building any object or checking the payload (for ``swc-rs --version``),
    or None when it cannot be read. :func:`load_model` still verifies the file when it is used.
    """
    import json

    try:
        with zipfile.ZipFile(path) as outer:
            card = json.loads(outer.read("schema.json"))["content"]["card"]["content"]
        return {key: json.loads(node["content"]) for key, node in card.items()
                if isinstance(node, dict) and node.get("is_json") and node.get("__class__") in ("str", "int", "float")}
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None

#: :func:`pixel_families_hint` by (resolved path, size, modification time in ns).
_HINTS: dict[tuple[str, int, int], list[str]] = {}


#: Models loaded by this process, by (resolved path, SHA-256 of the file): a batch worker
#: that runs many tiles loads the model file once (hashing it costs ~10 ms, loading ~3 s).
_LOADED: dict[tuple[str, str], PatchModel] = {}


def load_model(path: str | Path) -> PatchModel:
    """Load and verify a model file (see :func:`load_bundle`).

    The same file (same path and bytes) already loaded by this process is not loaded again.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        key = (str(path.resolve()), hashlib.sha256(data).hexdigest())
    except OSError:
        data, key = None, None  # load_bundle says what is wrong with the file
    if key is not None and key in _LOADED:
        return _LOADED[key]
    bundle, card = load_bundle(path, data)
    model = PatchModel(bundle, card, path=path)
    if key is not None:
        _LOADED.clear()  # keep one model: a process running many tiles does not pile them up
        _LOADED[key] = model
    return model


# -- the model ----------------------------------------------------------------------------
class PatchModel:
    """A loaded swc-rs model: the pixel mask of each band-set family and the patch typer.

    Attributes
    ----------
    model_id : str
    card : dict
        Training data, features, thresholds, metrics, licence of the labels.
    """

    def __init__(self, bundle: dict, card: dict | None = None, path: Path | None = None):
        self.bundle = bundle
        self.card = card or {}
        self.path = path
        self.model_id = str(bundle.get("model_id", "swc-rs-model"))

    def families(self) -> list[str]:
        return sorted(self.bundle.get("pixel", {}))

    def pixel_probability(self, stack: np.ndarray, gate: np.ndarray, family: str) -> np.ndarray:
        """P(disturbance) of the gated pixels (float32 ``(h, w)``, 0 outside the gate)."""
        entry = self.bundle["pixel"][family]
        prob = np.zeros(gate.shape, np.float32)
        if gate.any():
            x = stack[:, gate].T
            prob[gate] = entry["classifier"].predict_proba(x)[:, 1]
        return prob

    def pixel_mask(self, before, after, valid, excluded, roles, ev, config) -> np.ndarray | None:
        """Candidate disturbance mask of one window, or None (no model for this band set).

        Parameters
        ----------
        before, after : ndarray, float32, shape (len(roles), h, w)
            Reflectance; AFTER radiometrically normalised.
        valid, excluded : ndarray, bool, shape (h, w)
            Data on both dates; cloud/shadow on either date.
        roles : tuple of str
        ev : swc_rs.change.Evidence
        config : swc_rs.config.DetectConfig

        Returns
        -------
        ndarray of bool, shape (h, w), or None
        """
        family = band_family(roles)
        entry = self.bundle.get("pixel", {}).get(family)
        if entry is None:
            return None
        water = (ev.water_before > config.change.water_ndwi) | (ev.water_after > config.change.water_ndwi)
        stack = pixel_features(before, after, valid, tuple(roles), ev, excluded, water)
        gate = gate_mask(stack, valid, entry["gate_z"])
        prob = self.pixel_probability(stack, gate, family)
        return gate & (prob >= entry["threshold"])

    def applies_to(self, roles=None, pixel_m: float | None = None) -> bool:
        """Whether the patch classifier was trained on imagery like this (its domain)."""
        patch = self.bundle.get("patch")
        if patch is None:
            return False
        domain = patch.get("domain") or {}
        if roles is not None and domain.get("families") and band_family(tuple(roles)) not in domain["families"]:
            return False
        if pixel_m is not None and domain.get("max_pixel_m") and pixel_m > float(domain["max_pixel_m"]):
            return False
        return True

    def predict_patches(self, feats: pd.DataFrame, *, roles=None, pixel_m: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """QTYPE, calibrated confidence (0–1) and likely X_REASON of each patch.

        The patch classifier predicts fine classes — the three construction QTYPEs and
        非生产建设项目 split by its reason (``非生产建设项目|耕地翻耕`` ...). A patch is
        construction when the summed probability of 非生产建设项目 is below the model's
        ``not_project_threshold`` (0.5), and then takes the likeliest construction QTYPE;
        X_CONF is the probability of the construction/non-construction decision; the
        reason is the most probable sub-class when the QTYPE is 非生产建设项目, else ``""``.
        Outside the classifier's domain (:meth:`applies_to`: band set and pixel size of
        its training imagery) the documented rules type the patches.
        """
        n = len(feats)
        patch = self.bundle.get("patch") if self.applies_to(roles, pixel_m) else None
        if n == 0 or patch is None:
            from swc_rs.classify import rule_qtype
            from swc_rs.config import ChangeConfig, ClassifyConfig

            if n == 0:
                return np.array([], dtype=object), np.array([], dtype=float), np.array([], dtype=object)
            return rule_qtype(feats, ClassifyConfig(), ChangeConfig())
        x = feats[list(patch["features"])].to_numpy(dtype=np.float64)
        classes = [str(c) for c in patch["classes"]]
        proba = patch["classifier"].predict_proba(x)
        coarse = [c.split("|", 1)[0] for c in classes]
        # Two decisions, as a supervisor would take them: is it construction at all
        # (summed probability of the construction classes against 非生产建设项目), and if
        # so, which kind (the likeliest construction class).
        is_np_col = np.array([c == codes.NOT_PROJECT for c in coarse])
        p_np = proba[:, is_np_col].sum(axis=1) if is_np_col.any() else np.zeros(n)
        kinds = [c for c in dict.fromkeys(coarse) if c != codes.NOT_PROJECT]
        if kinds:
            by_kind = np.stack([proba[:, [i for i, c in enumerate(coarse) if c == k]].sum(axis=1) for k in kinds], axis=1)
            kind = np.array([kinds[i] for i in by_kind.argmax(axis=1)], dtype=object)
        else:
            kind = np.full(n, codes.OTHER, dtype=object)
        construction = p_np < float(patch.get("not_project_threshold", 0.5))
        qtype = np.where(construction, kind, codes.NOT_PROJECT).astype(object)
        conf = np.clip(np.where(construction, 1.0 - p_np, p_np), 0.0, 1.0).astype(float)
        reason = np.full(n, "", dtype=object)
        np_cols = [i for i, c in enumerate(classes) if c.startswith(NOT_PROJECT_PREFIX)]
        if np_cols:
            sub = np.array([classes[i].split("|", 1)[1] for i in np_cols], dtype=object)
            which = sub[proba[:, np_cols].argmax(axis=1)]
            is_np = qtype == codes.NOT_PROJECT
            reason[is_np] = which[is_np]
        return qtype, conf, reason


__all__ = ["FEATURES", "FEATURE_NAMES", "PatchModel", "TRUSTED_TYPES", "default_model_path", "load_bundle",
           "load_model", "save_model"]
