"""Field verification (现场复核): field results in, an audited history store, verdicts applied.

The closed loop of DOMAIN.md — suspected patches issued → field check → feedback —
kept in one GeoPackage, the **history store** (``HISTORY.gpkg``):

``store_info``
    Marks the file as a store (``KIND`` = ``swc-rs history store``, schema version).
    swc-rs never writes into, nor overwrites, a GeoPackage that lacks it, and never
    overwrites a store with anything else.
``patches`` (MultiPolygon, EPSG:4490)
    The patches of every detect output registered with the store (``detect
    --history`` or ``verify import --output``): the desk values of each QDNM, its
    period (``PERIOD``), run (``RUN_ID``) and developer (``DPOZ``). Append-only; a run
    is registered once. The latest registration of a QDNM gives its last geometry.
``verifications`` (append-only audit trail)
    One record per patch and field a field team set: ``RECORD_ID``, ``QDNM``,
    ``FIELD``, ``OLD_VALUE`` (the value before, at import time), ``NEW_VALUE``,
    ``XCFHR`` (who), ``DATE`` (when, ISO date), ``IMPORTED_AT`` (UTC), ``SOURCE`` and
    ``SOURCE_SHA256`` (the field file). A record is never rewritten or deleted; a later
    verdict adds a record. A record is *identical* to another when QDNM, FIELD,
    NEW_VALUE, XCFHR, DATE and SOURCE_SHA256 agree: importing a file again adds nothing.
``store_log`` (append-only)
    One row per change of the store: what was imported or registered, when, counts.
``developers`` (derived, recomputed on every write)
    The developer watch list (by DPOZ): confirmed violation counts and the flags
    重点关注名单 / 黑名单 from :class:`WatchListConfig`.

Every write copies the store to a temporary file next to it, changes the copy and
renames it onto the store, under an exclusive lock: a crash leaves the old store
intact, and a failed validation leaves it byte-identical.

The current verdict of a patch is, for each field, the value of its latest record
(by DATE, then import time, then record id). A patch is a *false alarm* when its
verdict QTYPE is 非生产建设项目, a *confirmed violation* when its verdict BYD is a
field non-compliance value (未批先建, 超出防治责任范围, 建设地点变更, 未批先弃), and
*closed* (销号) when its ``X_CLOSE`` verdict is 销号.

What the field file may hold (DOMAIN.md "Field verification"; INTERFACE.md FIELD.gpkg)
--------------------------------------------------------------------------------------
A copy of an output's ``suspected_violations`` layer, identified by QDNM, with:

- ``RST`` 未复核 (row ignored) · 已复核 · 无法核实 — required.
- ``XCFHR`` (checker) and ``DATE`` (ISO date) — required on every checked row.
- ``QTYPE`` (the four DOMAIN.md values) — required on 已复核 rows. 非生产建设项目 marks
  a false alarm and then needs ``X_REASON`` (DOMAIN.md reasons); its ``BYD`` must not
  be a non-compliance verdict.
- ``BYD`` on 已复核 construction rows: the field verdict without 疑似, or 合规.
- ``QDCS`` (construction status), ``NOTE``, ``ZPBH`` (photo ids), ``DPOZ`` (developer
  found on site) — optional.
- ``X_CLOSE`` = 销号 closes a confirmed violation out (on a 已复核 row whose BYD is
  the confirmed verdict) — optional.

Rows still equal to what the registered output said (no XCFHR/DATE and every field
unchanged) count as untouched and are ignored too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from swc_rs import __version__, codes, pgstore
from swc_rs.errors import InputError, InputFileError, VerificationError

log = logging.getLogger(__name__)

STORE_KIND = "swc-rs history store"
SCHEMA_VERSION = "1"
STORE_CRS = "EPSG:4490"

CHECKED = codes.RST[1]  # 已复核
UNVERIFIABLE = codes.RST[2]  # 无法核实
CLOSED = "销号"
#: Field verdicts that confirm a violation (BYD without 疑似, except 合规).
CONFIRMED_BYD = tuple(v for v in codes.BYD_FIELD if v != codes.COMPLIANT)

#: The patch fields of a detect output (mirrors ``swc_rs.pipeline.PATCH_FIELDS``).
DESK_FIELDS = (
    "QDNM", "QTYPE", "QAREA", "EAREA", "QDCS", "QDTYPE", "BYD", "PRNM", "RST", "NOTE",
    "X_ZONE", "X_COLOR", "X_CONF", "X_T1", "X_T2", "X_RULE", "X_SHIFT", "X_SENS", "X_REASON",
)
#: Fields added to a detect output's patches when a history store is applied.
HISTORY_FIELDS = ("XCFHR", "DATE", "ZPBH", "X_CLOSE", "X_CARRY")
#: Fields a field team sets; each becomes an audit record when set.
TRACKED = ("RST", "QTYPE", "BYD", "X_REASON", "QDCS", "NOTE", "ZPBH", "X_CLOSE", "DPOZ")
_FLOATS = ("QAREA", "EAREA", "X_CONF", "X_SHIFT")
STORE_PATCH_FIELDS = ("QDNM", "PERIOD", "RUN_ID", "SOURCE", "REGISTERED_AT", "DPOZ") + DESK_FIELDS[1:] + HISTORY_FIELDS
RECORD_FIELDS = ("RECORD_ID", "QDNM", "FIELD", "OLD_VALUE", "NEW_VALUE", "XCFHR", "DATE", "IMPORTED_AT", "SOURCE", "SOURCE_SHA256")
RECORD_KEY = ("QDNM", "FIELD", "NEW_VALUE", "XCFHR", "DATE", "SOURCE_SHA256")
LOG_FIELDS = ("AT", "EVENT", "SOURCE", "SOURCE_SHA256", "N_ROWS", "N_RECORDS", "N_PATCHES", "SWC_RS_VERSION")
DEVELOPER_FIELDS = ("DPOZ", "N_CONFIRMED", "N_OPEN", "N_SENSITIVE", "AREA_HM2", "QDNM", "FLAG", "WATCH_AT", "BLACKLIST_AT")

WATCH = "重点关注名单"
BLACKLIST = "黑名单"


@dataclass(frozen=True)
class WatchListConfig:
    """Thresholds of the developer watch list (DOMAIN.md: a watch list / blacklist of developers).

    Counts are of confirmed violations ever recorded for a developer (closed ones
    included: the history is what the list is about).

    Attributes
    ----------
    watch_at : int
        重点关注名单 from this many confirmed violations (default 1).
    blacklist_at : int
        黑名单 from this many confirmed violations (default 3).
    blacklist_sensitive : bool
        Any confirmed violation inside a sensitive area (ecological red line, national
        park, drinking-water source: ``X_SENS`` set) puts the developer on the 黑名单
        (default True).
    """

    watch_at: int = 1
    blacklist_at: int = 3
    blacklist_sensitive: bool = True

    def __post_init__(self):
        if self.watch_at < 1 or self.blacklist_at < self.watch_at:
            raise InputError(
                f"watch-list thresholds watch_at={self.watch_at}, blacklist_at={self.blacklist_at} are inconsistent",
                fix="use 1 ≤ watch_at ≤ blacklist_at",
            )


@dataclass(frozen=True)
class FieldProblem:
    """One bad value of a field file: which patch (QDNM), which field, what and why."""

    qdnm: str
    field: str
    value: str
    expected: str

    def __str__(self) -> str:
        value = repr(self.value) if self.value != "" else "empty"
        return f"QDNM {self.qdnm or '(empty)'} field {self.field}: {value} — {self.expected}"


@dataclass
class ImportSummary:
    """What ``verify import`` did."""

    store: str  #: the store as shown (a database URL without its password)
    source: Path
    rows: int
    checked: int
    ignored: int
    new_records: int
    duplicate_records: int
    registered_patches: int
    developers: pd.DataFrame
    written: bool


@dataclass
class HistoryApplied:
    """A detect result's patches after the store was applied, and what changed."""

    patches: gpd.GeoDataFrame
    n_verified: int
    n_suppressed: int
    n_confirmed: int
    n_carried: int
    developers: pd.DataFrame


# -- the store ------------------------------------------------------------------------
@dataclass
class HistoryStore:
    """An in-memory snapshot of a history store (empty when the file does not exist yet)."""

    path: Path | str  #: a GeoPackage, or a postgresql:// URL
    patches: gpd.GeoDataFrame
    verifications: pd.DataFrame
    log: pd.DataFrame
    exists: bool = True
    _state: pd.DataFrame | None = field(default=None, repr=False)

    def latest_patches(self) -> gpd.GeoDataFrame:
        """The latest registration of every QDNM (EPSG:4490)."""
        if len(self.patches) == 0:
            return self.patches.copy()
        order = self.patches.sort_values(["PERIOD", "REGISTERED_AT"], kind="stable")
        return order.drop_duplicates("QDNM", keep="last").set_index("QDNM", drop=False)

    def known_qdnm(self) -> set[str]:
        return set(self.patches["QDNM"].astype(str)) if len(self.patches) else set()

    def state(self) -> pd.DataFrame:
        """Current verdict per QDNM (see :func:`verdict_state`)."""
        if self._state is None:
            self._state = verdict_state(self.verifications)
        return self._state

    def last_period_patches(self, period: str, crs: str) -> gpd.GeoDataFrame | None:
        """Registered patches of the latest period before ``period`` (else of ``period`` itself).

        Returns the QDNM, QAREA and geometry in ``crs`` — what
        :func:`swc_rs.history.link_previous` needs — or None when nothing is registered.
        """
        if len(self.patches) == 0:
            return None
        periods = sorted(set(self.patches["PERIOD"].astype(str)))
        earlier = [p for p in periods if p < str(period)]
        last = earlier[-1] if earlier else (str(period) if str(period) in periods else None)
        if last is None:
            return None
        sel = self.patches[self.patches["PERIOD"].astype(str) == last].sort_values("REGISTERED_AT", kind="stable")
        sel = sel.drop_duplicates("QDNM", keep="last")
        return sel[["QDNM", "QAREA", "geometry"]].to_crs(crs).reset_index(drop=True)


def store_location(store: str | Path) -> str | Path:
    """A store given on the command line: a ``postgresql://`` URL (kept as text), else a path."""
    return store if pgstore.is_url(store) else Path(store)


def store_name(store: str | Path) -> str:
    """How a store is shown and recorded (a database URL without its password)."""
    return pgstore.redacted(store) if pgstore.is_url(store) else str(store)


def is_history_store(path: str | Path) -> bool:
    """True when ``path`` is a GeoPackage holding a ``store_info`` table of a history store
    (a database URL always is one: its tables are made on first use)."""
    if pgstore.is_url(path):
        return True
    path = Path(path)
    if not path.is_file():
        return False
    try:
        if "store_info" not in {str(n) for n, _ in pyogrio.list_layers(path)}:
            return False
        info = pyogrio.read_dataframe(path, layer="store_info")
    except Exception:  # not a readable data source at all
        return False
    return bool(((info.get("KEY") == "KIND") & (info.get("VALUE") == STORE_KIND)).any()) if len(info) else False


def load_store(path: str | Path) -> HistoryStore:
    """Read a history store; a missing file is an empty store (it is created on the first write).

    Raises
    ------
    InputFileError
        ``path`` exists but is not a history store (it is never written then).
    """
    if pgstore.is_url(path):
        return _load_database(path)
    path = Path(path)
    if not path.exists():
        return HistoryStore(path, _empty_patches(), _empty(RECORD_FIELDS), _empty(LOG_FIELDS), exists=False)
    if path.suffix.lower() != ".gpkg" or not is_history_store(path):
        raise InputFileError(
            "is not a swc-rs history store (it has no store_info table); it was left untouched",
            path=path,
            fix="give the store's own file (HISTORY.gpkg), or a new file name to start a store",
        )
    patches = gpd.read_file(path, layer="patches", engine="pyogrio")
    if patches.crs is None:
        patches = patches.set_crs(STORE_CRS)
    patches = _normalise_patches(patches)
    verifications = _as_text(pyogrio.read_dataframe(path, layer="verifications"), RECORD_FIELDS, ints=("RECORD_ID",))
    store_log = pyogrio.read_dataframe(path, layer="store_log") if "store_log" in _layers(path) else _empty(LOG_FIELDS)
    return HistoryStore(path, patches, verifications, store_log, exists=True)


#: The connection of the open writer transaction of each database store (see :func:`_locked`).
_TRANSACTIONS: dict[str, object] = {}


def _load_database(url: str) -> HistoryStore:
    conn = _TRANSACTIONS.get(url)
    with contextlib.ExitStack() as stack:
        if conn is None:  # a reader: a snapshot in its own short transaction
            conn = stack.enter_context(contextlib.closing(pgstore.connect(url)))
        tables = pgstore.read(conn)
        if conn is not _TRANSACTIONS.get(url):
            conn.rollback()
    if tables is None:
        return HistoryStore(url, _empty_patches(), _empty(RECORD_FIELDS), _empty(LOG_FIELDS), exists=False)
    patches, verifications, store_log = tables
    return HistoryStore(url, _normalise_patches(patches), _as_text(verifications, RECORD_FIELDS, ints=("RECORD_ID",)),
                        store_log, exists=True)


def _layers(path: Path) -> set[str]:
    return {str(n) for n, _ in pyogrio.list_layers(path)}


def _empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c in ("RECORD_ID", "N_ROWS", "N_RECORDS", "N_PATCHES") else object) for c in columns})


def _empty_patches() -> gpd.GeoDataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=float if c in _FLOATS else object) for c in STORE_PATCH_FIELDS})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs=STORE_CRS))


def _text(value) -> str:
    """A cell as stripped text; None/NaN → ''; dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        if pd.isna(value):
            return ""
        return value.date().isoformat() if (value.hour, value.minute, value.second) == (0, 0, 0) else value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _as_text(frame: pd.DataFrame, columns: Iterable[str], ints: Iterable[str] = ()) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for c in columns:
        if c in ints:
            out[c] = frame[c].astype("int64") if c in frame else pd.Series(0, index=frame.index, dtype="int64")
        else:
            out[c] = frame[c].map(_text).astype(object) if c in frame else pd.Series("", index=frame.index, dtype=object)
    return out.reset_index(drop=True)


def _normalise_patches(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    data = {}
    for c in STORE_PATCH_FIELDS:
        if c in _FLOATS:
            data[c] = pd.to_numeric(frame[c], errors="coerce").fillna(0.0).astype(float).to_numpy() if c in frame else np.zeros(len(frame))
        else:
            data[c] = frame[c].map(_text).to_numpy(dtype=object) if c in frame else np.full(len(frame), "", dtype=object)
    return gpd.GeoDataFrame(data, geometry=frame.geometry.values, crs=frame.crs or STORE_CRS).to_crs(STORE_CRS)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock on ``<store>.lock`` so that two imports never interleave; for a
    database store, one transaction holding its advisory lock (committed at the end)."""
    if pgstore.is_url(path):
        with pgstore.transaction(path) as conn:
            _TRANSACTIONS[path] = conn
            try:
                yield
            finally:
                _TRANSACTIONS.pop(path, None)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _update_store(path: Path, change: Callable[[Path], None]) -> None:
    """Copy the store (or create one) to a temporary file, apply ``change``, rename it onto ``path``."""
    from swc_rs.export.atomic import is_write_failure, temporary_beside, write_failed

    try:
        tmp = temporary_beside(path, ".gpkg")
    except OSError as err:
        raise write_failed(path, err) from err
    try:
        if path.exists():
            shutil.copyfile(path, tmp)
        else:
            tmp.unlink()
            _create_store(tmp)
        change(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_write_failure(err):
            raise write_failed(path, err) from err
        raise
    finally:
        for suffix in ("-journal", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)


def _create_store(path: Path) -> None:
    now = _now()
    info = pd.DataFrame({
        "KEY": ["KIND", "SCHEMA_VERSION", "CREATED_AT", "CREATED_BY"],
        "VALUE": [STORE_KIND, SCHEMA_VERSION, now, f"swc-rs {__version__}"],
    })
    pyogrio.write_dataframe(info, path, layer="store_info", driver="GPKG")
    pyogrio.write_dataframe(_empty_patches(), path, layer="patches", driver="GPKG", geometry_type="MultiPolygon", promote_to_multi=True)
    pyogrio.write_dataframe(_empty(RECORD_FIELDS), path, layer="verifications", driver="GPKG")
    pyogrio.write_dataframe(_empty(LOG_FIELDS), path, layer="store_log", driver="GPKG")
    pyogrio.write_dataframe(_empty(DEVELOPER_FIELDS), path, layer="developers", driver="GPKG")


def _insert(db: sqlite3.Connection, table: str, frame: pd.DataFrame) -> None:
    """Append ``frame`` to a non-spatial GeoPackage table (created by :func:`_create_store`)."""
    if len(frame) == 0:
        return
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    marks = ", ".join("?" for _ in frame.columns)
    rows = [tuple(v.item() if isinstance(v, np.generic) else v for v in row) for row in frame.itertuples(index=False)]
    db.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks})', rows)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


# -- verdicts ----------------------------------------------------------------------------
def verdict_state(verifications: pd.DataFrame) -> pd.DataFrame:
    """The current verdict of every verified QDNM.

    Returns
    -------
    DataFrame indexed by QDNM with one column per :data:`TRACKED` field (the value of the
    field's latest record, ``""`` when the field was never set), ``XCFHR`` and ``DATE``
    of the latest RST record, and booleans ``FALSE_ALARM``, ``CONFIRMED``, ``CLOSED``.
    """
    columns = list(TRACKED) + ["XCFHR", "DATE", "FALSE_ALARM", "CONFIRMED", "CLOSED"]
    if verifications is None or len(verifications) == 0:
        return pd.DataFrame(columns=columns).set_index(pd.Index([], name="QDNM"))
    ordered = verifications.sort_values(["DATE", "IMPORTED_AT", "RECORD_ID"], kind="stable")
    latest = ordered.groupby(["QDNM", "FIELD"], sort=False).tail(1)
    state = latest.pivot(index="QDNM", columns="FIELD", values="NEW_VALUE")
    for name in TRACKED:
        state[name] = state[name].fillna("").astype(object) if name in state else ""
    state = state[list(TRACKED)].copy()
    who = latest[latest["FIELD"] == "RST"].set_index("QDNM")[["XCFHR", "DATE"]]
    state = state.join(who, how="left")
    state[["XCFHR", "DATE"]] = state[["XCFHR", "DATE"]].fillna("")
    state["FALSE_ALARM"] = state["QTYPE"] == codes.NOT_PROJECT
    state["CONFIRMED"] = ~state["FALSE_ALARM"] & state["BYD"].isin(CONFIRMED_BYD)
    state["CLOSED"] = state["X_CLOSE"] == CLOSED
    state.index.name = "QDNM"
    return state


# -- field results ------------------------------------------------------------------------
def read_field_results(path: str | Path, layer: str | None = None) -> pd.DataFrame:
    """Read a field file: the QDNM, XCFHR, DATE and :data:`TRACKED` columns as text.

    ``layer`` defaults to ``suspected_violations``, else the file's only layer.

    Raises
    ------
    InputFileError
        Missing/unreadable file, no such layer, or several layers and none named.
    VerificationError
        The layer lacks QDNM or RST.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError("file does not exist", path=path, fix="check the path of the field results")
    if is_history_store(path):
        raise InputFileError("is a history store, not field results", path=path,
                             fix="give the field-edited copy of suspected_violations as FIELD and the store with --store")
    try:
        layers = [str(n) for n, _ in pyogrio.list_layers(path)]
    except Exception as err:
        raise InputFileError(f"cannot open as a vector data source ({err})", path=path,
                             fix="give the GeoPackage edited in the field (a copy of suspected_violations)") from err
    if layer is None:
        if "suspected_violations" in layers:
            layer = "suspected_violations"
        elif len(layers) == 1:
            layer = layers[0]
        else:
            raise InputFileError(f"holds several layers ({', '.join(layers)}) and none is suspected_violations", path=path,
                                 fix="name the edited layer with --layer")
    elif layer not in layers:
        raise InputFileError(f"has no layer {layer!r} (layers: {', '.join(layers) or 'none'})", path=path,
                             fix="name one of the layers above with --layer")
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, read_geometry=False)
    except Exception as err:
        raise InputFileError(f"cannot read layer {layer!r} ({err})", path=path, fix="check that the file is complete") from err
    missing = [c for c in ("QDNM", "RST") if c not in frame.columns]
    if missing:
        raise VerificationError(
            f"layer {layer!r} has no {' or '.join(missing)} field (fields: {', '.join(map(str, frame.columns)) or 'none'})",
            path=path, fix="import a copy of an output's suspected_violations layer, which carries QDNM and RST",
        )
    return _as_text(frame, ("QDNM", "XCFHR", "DATE") + TRACKED)


def _parse_date(text: str) -> str | None:
    for parse in (dt.date.fromisoformat, lambda t: dt.datetime.fromisoformat(t).date(), lambda t: dt.datetime.strptime(t, "%Y/%m/%d").date()):
        try:
            return parse(text).isoformat()
        except ValueError:
            continue
    return None


def _untouched(row: pd.Series, desk: pd.Series | None) -> bool:
    """True when a row still says what the registered output said (nothing was edited)."""
    if desk is None:
        return False
    names = ("XCFHR", "DATE") + tuple(f for f in TRACKED if f != "DPOZ" or row[f])
    return all(row[f] == _text(desk.get(f, "")) for f in names)


def check_field_results(field: pd.DataFrame, desk: pd.DataFrame) -> tuple[list[FieldProblem], np.ndarray]:
    """Validate field rows against DOMAIN.md and the known patches.

    Parameters
    ----------
    field
        From :func:`read_field_results`.
    desk
        Known patches indexed by QDNM (the latest registration: desk values).

    Returns
    -------
    problems : list of FieldProblem
        Empty when every row is usable.
    used : ndarray of bool
        Rows to record (neither 未复核 nor untouched).
    """
    problems: list[FieldProblem] = []
    used = np.zeros(len(field), dtype=bool)
    seen: set[str] = set()
    for i, r in enumerate(field.to_dict("records")):
        if r["RST"] not in codes.RST:
            problems.append(FieldProblem(r["QDNM"], "RST", r["RST"], _one_of(codes.RST) + " (DOMAIN.md 复核状态)"))
            continue
        if r["RST"] == codes.NOT_CHECKED:
            continue
        known = r["QDNM"] in desk.index
        if known and _untouched(pd.Series(r), desk.loc[r["QDNM"]]):
            continue
        used[i] = True
        problems += _row_problems(r, known, r["QDNM"] in seen)
        seen.add(r["QDNM"])
    return problems, used


def _one_of(values) -> str:
    return "expected one of " + ", ".join(values)


def _row_problems(r: dict, known: bool, repeated: bool) -> list[FieldProblem]:
    """Problems of one checked row (RST 已复核 or 无法核实)."""
    out: list[FieldProblem] = []

    def add(name: str, expected: str) -> None:
        out.append(FieldProblem(r["QDNM"], name, r[name], expected))

    if not r["QDNM"]:
        add("QDNM", "every checked row needs the patch id of the output it was copied from")
        return out
    if not known:
        add("QDNM", "not a patch of any detect output registered with the store (register that output with --output OUT.gpkg)")
        return out
    if repeated:
        add("QDNM", "appears twice among the checked rows; keep one row per patch")
    rst = r["RST"]
    if not r["XCFHR"]:
        add("XCFHR", "who checked the patch (复核人) is required on a checked row")
    if not r["DATE"]:
        add("DATE", "the date of the check (YYYY-MM-DD) is required on a checked row")
    elif _parse_date(r["DATE"]) is None:
        add("DATE", "expected an ISO date YYYY-MM-DD")
    qtype, byd, reason = r["QTYPE"], r["BYD"], r["X_REASON"]
    if qtype and qtype not in codes.QTYPES:
        add("QTYPE", _one_of(codes.QTYPES))
    elif rst == CHECKED and not qtype:
        add("QTYPE", "a checked patch needs its type (" + ", ".join(codes.QTYPES) + ")")
    false_alarm = qtype == codes.NOT_PROJECT
    if byd and byd not in codes.BYD_FIELD and byd not in codes.BYD_DESK:
        add("BYD", _one_of(codes.BYD_FIELD) + " (field verdicts drop 疑似)")
    elif rst == CHECKED and not false_alarm and byd not in codes.BYD_FIELD:
        add("BYD", "a checked patch needs the field verdict without 疑似: " + ", ".join(codes.BYD_FIELD))
    elif rst == CHECKED and false_alarm and byd in CONFIRMED_BYD:
        add("BYD", "a false alarm (QTYPE 非生产建设项目) has no non-compliance verdict; leave BYD empty or 合规")
    if reason and reason not in codes.X_REASON:
        add("X_REASON", _one_of(codes.X_REASON))
    elif rst == CHECKED and false_alarm and not reason:
        add("X_REASON", "a false alarm (QTYPE 非生产建设项目) needs its reason: " + ", ".join(codes.X_REASON))
    if r["QDCS"] and r["QDCS"] not in codes.QDCS:
        add("QDCS", _one_of(codes.QDCS))
    if r["X_CLOSE"]:
        if r["X_CLOSE"] != CLOSED:
            add("X_CLOSE", f"expected {CLOSED} or empty")
        elif rst != CHECKED or byd not in CONFIRMED_BYD or false_alarm:
            add("X_CLOSE", "only a checked, confirmed violation (BYD " + ", ".join(CONFIRMED_BYD) + ") can be closed out")
    return out


def verification_records(field: pd.DataFrame, used: np.ndarray, desk: pd.DataFrame, state: pd.DataFrame, *,
                         source: str, sha256: str, imported_at: str) -> pd.DataFrame:
    """Audit records of the used (validated) rows, without RECORD_ID.

    Every checked row records RST; 已复核 rows also record QTYPE and (unless a false
    alarm) BYD, and X_REASON / X_CLOSE when set; QDCS, NOTE, ZPBH and DPOZ are recorded
    when set and different from the registered output's value. OLD_VALUE is the
    current verdict (else the registered output's value).
    """
    rows = []
    for r in field[used].to_dict("records"):
        q, rst = r["QDNM"], r["RST"]
        fields = ["RST"]
        if rst == CHECKED:
            fields.append("QTYPE")
            if r["QTYPE"] != codes.NOT_PROJECT:
                fields.append("BYD")
            fields += [f for f in ("X_REASON", "X_CLOSE") if r[f]]
        d = desk.loc[q] if q in desk.index else None
        fields += [f for f in ("QDCS", "NOTE", "ZPBH", "DPOZ") if r[f] and (d is None or r[f] != _text(d.get(f, "")))]
        for name in fields:
            old = ""
            if q in state.index and state.at[q, name]:
                old = state.at[q, name]
            elif d is not None:
                old = _text(d.get(name, ""))
            rows.append({"QDNM": q, "FIELD": name, "OLD_VALUE": old, "NEW_VALUE": r[name], "XCFHR": r["XCFHR"],
                         "DATE": _parse_date(r["DATE"]) or r["DATE"], "IMPORTED_AT": imported_at,
                         "SOURCE": source, "SOURCE_SHA256": sha256})
    return pd.DataFrame(rows, columns=[c for c in RECORD_FIELDS if c != "RECORD_ID"])


# -- registering detect outputs ----------------------------------------------------------
def run_id(run_info: dict) -> str:
    """A run's identity: SHA-256 of its start time, period and input checksums."""
    keys = ("started_utc", "period", "before_sha256", "after_sha256")
    text = json.dumps({k: _text(run_info.get(k, "")) for k in keys}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def desk_patches(patches: gpd.GeoDataFrame, projects: pd.DataFrame | None, run_info: dict, *, source: str) -> gpd.GeoDataFrame:
    """Rows of the store's ``patches`` table for one detect output (EPSG:4490)."""
    frame = patches.to_crs(STORE_CRS).copy()
    dpoz = {}
    if projects is not None and len(projects) and "PRNM" in projects and "DPOZ" in projects:
        for name, who in zip(projects["PRNM"], projects["DPOZ"], strict=True):
            if _text(name) and _text(who):
                dpoz.setdefault(_text(name), _text(who))
    frame["PERIOD"] = _text(run_info.get("period", ""))
    frame["RUN_ID"] = run_id(run_info)
    frame["SOURCE"] = source
    frame["REGISTERED_AT"] = _now()
    frame["DPOZ"] = frame["PRNM"].map(_text).map(lambda p: dpoz.get(p, "")) if "PRNM" in frame else ""
    return _normalise_patches(frame)


def read_output(path: str | Path) -> gpd.GeoDataFrame:
    """Store rows for the detect output at ``path`` (its disturbance_patches, projects, run_info)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError("file does not exist", path=path, fix="give the OUT.gpkg written by swc-rs detect")
    try:
        layers = _layers(path)
    except Exception as err:
        raise InputFileError(f"cannot open as a GeoPackage ({err})", path=path, fix="give the OUT.gpkg written by swc-rs detect") from err
    if not {"disturbance_patches", "run_info"} <= layers:
        raise InputFileError("is not a swc-rs detect output (no disturbance_patches or run_info layer)", path=path,
                             fix="give the OUT.gpkg the field file was copied from")
    patches = gpd.read_file(path, layer="disturbance_patches", engine="pyogrio")
    projects = pyogrio.read_dataframe(path, layer="projects", read_geometry=False) if "projects" in layers else None
    info = pyogrio.read_dataframe(path, layer="run_info").iloc[0].to_dict()
    if "QDNM" not in patches:
        raise InputFileError("has no QDNM field in disturbance_patches", path=path, fix="give an output written by swc-rs detect")
    return desk_patches(patches, projects, info, source=str(path.resolve()))


def _new_registrations(store: HistoryStore, rows: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if len(rows) == 0:
        return rows
    known_runs = set(store.patches["RUN_ID"]) if len(store.patches) else set()
    return rows[~rows["RUN_ID"].isin(known_runs)]


def register_run(store_path: str | Path, result, output: str | Path, *, watch: WatchListConfig | None = None) -> int:
    """Register a detect result (written to ``output``) with the store; returns the patches added.

    Registering the same run twice adds nothing.
    """
    store_path = store_location(store_path)
    rows = desk_patches(result.patches, result.projects, result.run_info, source=str(Path(output).resolve()))
    with _locked(store_path):
        store = load_store(store_path)
        rows = _new_registrations(store, rows)
        if len(rows) == 0:
            return 0
        _write(store, rows, _empty(RECORD_FIELDS), event="register", source=str(Path(output).resolve()), sha="",
               n_rows=len(rows), watch=watch or WatchListConfig())
    log.info("registered %d patches of %s with %s", len(rows), output, store_name(store_path))
    return len(rows)


def _write(store: HistoryStore, new_patches: gpd.GeoDataFrame, new_records: pd.DataFrame, *, event: str, source: str,
           sha: str, n_rows: int, watch: WatchListConfig) -> pd.DataFrame:
    """Append patches, records and a log row, recompute developers; atomically."""
    if len(new_records):
        start = int(store.verifications["RECORD_ID"].max()) + 1 if len(store.verifications) else 1
        new_records = new_records.copy()
        new_records.insert(0, "RECORD_ID", np.arange(start, start + len(new_records), dtype="int64"))
    after = HistoryStore(
        store.path,
        _normalise_patches(pd.concat([store.patches, new_patches], ignore_index=True)) if len(new_patches) else store.patches,
        pd.concat([store.verifications, new_records], ignore_index=True) if len(new_records) else store.verifications,
        store.log,
    )
    developers = developer_watch_list(after, watch)
    entry = pd.DataFrame([{"AT": _now(), "EVENT": event, "SOURCE": source, "SOURCE_SHA256": sha, "N_ROWS": int(n_rows),
                           "N_RECORDS": int(len(new_records)), "N_PATCHES": int(len(new_patches)), "SWC_RS_VERSION": __version__}])

    if pgstore.is_url(store.path):
        pgstore.append(_TRANSACTIONS[store.path], new_patches[list(STORE_PATCH_FIELDS) + ["geometry"]]
                       if len(new_patches) else new_patches, new_records, entry, developers)
        return developers

    def change(tmp: Path) -> None:
        if len(new_patches):
            pyogrio.write_dataframe(new_patches[list(STORE_PATCH_FIELDS) + ["geometry"]], tmp, layer="patches",
                                    driver="GPKG", append=True, promote_to_multi=True)
        # The non-spatial tables in one SQLite transaction.
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            _insert(db, "verifications", new_records[list(RECORD_FIELDS)] if len(new_records) else new_records)
            _insert(db, "store_log", entry)
            db.execute("DELETE FROM developers")
            _insert(db, "developers", developers)

    _update_store(store.path, change)
    return developers


# -- import --------------------------------------------------------------------------------
def import_field_results(field_path: str | Path, store_path: str | Path, *, outputs: Iterable[str | Path] = (),
                         layer: str | None = None, watch: WatchListConfig | None = None) -> ImportSummary:
    """``verify import``: validate a field file and append its verdicts to the store.

    Parameters
    ----------
    field_path
        The field-edited copy of a ``suspected_violations`` layer.
    store_path
        The history store; created when it does not exist.
    outputs
        Detect outputs (OUT.gpkg) to register first, so that their QDNMs are known.
    layer
        Layer of the field file (default ``suspected_violations`` or the only layer).
    watch
        Developer watch-list thresholds.

    Raises
    ------
    VerificationError
        Values outside DOMAIN.md or unknown QDNMs; ``problems`` lists them all (by
        QDNM and field) and nothing from the file was recorded.
    InputFileError
        Unreadable files, or a store path that is not a store.
    """
    field_path, store_path = Path(field_path), store_location(store_path)
    watch = watch or WatchListConfig()
    local = isinstance(store_path, Path)
    if local and store_path.exists() and field_path.exists() and store_path.resolve() == field_path.resolve():
        raise InputError("the field file and the store are the same file", path=store_path,
                         fix="give the store with --store and the field-edited GeoPackage as FIELD")
    for out in outputs:
        if local and Path(out).exists() and store_path.exists() and Path(out).resolve() == store_path.resolve():
            raise InputError("--output names the store itself", path=out, fix="give the detect output (OUT.gpkg) with --output")
    if local and store_path.exists() and not is_history_store(store_path):
        load_store(store_path)  # says why, before a lock file is put beside someone else's file
    with _locked(store_path):
        store = load_store(store_path)
        registrations = [read_output(o) for o in outputs]
        new_patches = _new_registrations(store, pd.concat(registrations, ignore_index=True)) if registrations else _empty_patches()
        new_patches = gpd.GeoDataFrame(new_patches, geometry="geometry", crs=STORE_CRS)
        field = read_field_results(field_path, layer)
        sha = _sha256(field_path)
        known = HistoryStore(store.path, _normalise_patches(pd.concat([store.patches, new_patches], ignore_index=True)),
                             store.verifications, store.log)
        desk = known.latest_patches()
        problems, used = check_field_results(field, desk)
        if problems:
            shown = "; ".join(map(str, problems[:30])) + (f"; … and {len(problems) - 30} more" if len(problems) > 30 else "")
            err = VerificationError(
                f"{len(problems)} problem(s) in the field results, nothing was recorded: {shown}",
                path=field_path,
                fix="correct these values (DOMAIN.md, 'Field verification') in the file and import it again",
            )
            err.problems = problems
            raise err
        records = verification_records(field, used, desk, store.state(), source=str(field_path.resolve()), sha256=sha,
                                       imported_at=_now())
        existing = set(map(tuple, store.verifications[list(RECORD_KEY)].to_numpy())) if len(store.verifications) else set()
        is_new = np.array([tuple(r) not in existing for r in records[list(RECORD_KEY)].to_numpy()], dtype=bool) if len(records) else np.zeros(0, bool)
        fresh = records[is_new].reset_index(drop=True)
        developers = developer_watch_list(store, watch)
        written = bool(len(fresh) or len(new_patches))
        if written:
            developers = _write(store, new_patches, fresh, event="import", source=str(field_path.resolve()), sha=sha,
                                n_rows=int(used.sum()), watch=watch)
    log.info("%s: %d checked rows, %d new records, %d already in %s", field_path, int(used.sum()), len(fresh),
             len(records) - len(fresh), store_name(store_path))
    return ImportSummary(store=store_name(store_path), source=field_path, rows=len(field), checked=int(used.sum()),
                         ignored=int(len(field) - used.sum()), new_records=len(fresh),
                         duplicate_records=int(len(records) - len(fresh)), registered_patches=len(new_patches),
                         developers=developers, written=written)


# -- applying the store to a detect result -------------------------------------------------
def apply_history(patches: gpd.GeoDataFrame, store: HistoryStore, *, extent=None,
                  watch: WatchListConfig | None = None) -> HistoryApplied:
    """Apply the verdicts of ``store`` to this run's ``patches`` (which carry final QDNMs).

    - False alarms (verdict QTYPE 非生产建设项目) stay as patches, with RST, X_REASON and
      BYD ``""`` (rule 5), so they drop off ``suspected_violations``.
    - Confirmed verdicts replace BYD (without 疑似, or 合规) and QTYPE; RST, QDCS, NOTE,
      ZPBH, XCFHR and DATE come from the latest records.
    - Confirmed violations not closed out (销号), and patches that could not be checked
      (无法核实), that this run did not detect are carried: appended with their last
      registered geometry, QDTYPE 续建（范围不变） and ``X_CARRY`` = the period they were
      last detected. Only those meeting ``extent`` (this scene, same CRS) are carried.
    - A closed-out violation detected again keeps the desk verdict (a new suspicion).

    Parameters
    ----------
    patches
        This run's patches (the INTERFACE.md fields) in a metric or geographic CRS.
    store
        From :func:`load_store`.
    extent
        Scene outline in ``patches.crs``; None carries everything.
    """
    out = patches.copy()
    for name in HISTORY_FIELDS:
        out[name] = ""
    state = store.state()
    n_verified = n_suppressed = 0
    for i, q in enumerate(out["QDNM"].astype(str)):
        if q not in state.index:
            continue
        s = state.loc[q]
        if s["CLOSED"]:
            out.iat[i, out.columns.get_loc("NOTE")] = _join(out["NOTE"].iat[i], f"该图斑曾于 {s['DATE']} 现场复核并销号，本期再次检出")
            continue
        n_verified += 1
        n_suppressed += bool(s["FALSE_ALARM"])
        _apply_verdict(out, i, s)
    carried = _carried(out, store, state, extent, patches.crs)
    n_confirmed = int(out["QDNM"].map(lambda q: q in state.index and bool(state.at[q, "CONFIRMED"]) and not state.at[q, "CLOSED"]).sum())
    if len(carried):
        out = gpd.GeoDataFrame(pd.concat([out, carried[out.columns]], ignore_index=True), geometry=out.geometry.name, crs=out.crs)
        n_confirmed += int(carried["QDNM"].map(lambda q: bool(state.at[q, "CONFIRMED"])).sum())
    return HistoryApplied(out, n_verified, n_suppressed, n_confirmed, len(carried), developer_watch_list(store, watch or WatchListConfig()))


def _join(a: str, b: str) -> str:
    a = _text(a)
    return f"{a}；{b}" if a else b


def _apply_verdict(out: gpd.GeoDataFrame, i: int, s: pd.Series) -> None:
    def put(name, value):
        out.iat[i, out.columns.get_loc(name)] = value

    for name in ("RST", "QDCS", "ZPBH", "XCFHR", "DATE"):
        if s[name]:
            put(name, s[name])
    if s["NOTE"]:
        put("NOTE", s["NOTE"])
    if s["FALSE_ALARM"]:
        put("QTYPE", codes.NOT_PROJECT)
        put("BYD", "")
        put("EAREA", 0.0)
        put("X_COLOR", codes.GREEN)
        put("X_REASON", s["X_REASON"])
        put("X_RULE", f"规则5（现场复核 {s['DATE']} {s['XCFHR']}）：非生产建设项目，{s['X_REASON']}")
        return
    if s["QTYPE"]:
        put("QTYPE", s["QTYPE"])
    if s["BYD"] in codes.BYD_FIELD:
        put("BYD", s["BYD"])
        if s["BYD"] == codes.COMPLIANT:
            put("X_COLOR", codes.GREEN)
        elif out["X_COLOR"].iat[i] == codes.GREEN:
            put("X_COLOR", codes.YELLOW)
        put("X_RULE", _join(out["X_RULE"].iat[i], f"现场复核（{s['DATE']} {s['XCFHR']}）：{s['BYD']}"))


def _carried(out: gpd.GeoDataFrame, store: HistoryStore, state: pd.DataFrame, extent, crs) -> gpd.GeoDataFrame:
    if len(state) == 0 or len(store.patches) == 0:
        return out.iloc[0:0]
    keep = state[(state["CONFIRMED"] | ((state["RST"] == UNVERIFIABLE) & ~state["FALSE_ALARM"] & (state["BYD"] != codes.COMPLIANT)))
                 & ~state["CLOSED"]]
    latest = store.latest_patches()
    present = set(out["QDNM"].astype(str))
    wanted = [q for q in keep.index if q not in present and q in latest.index]
    if not wanted:
        return out.iloc[0:0]
    rows = latest.loc[wanted].reset_index(drop=True).to_crs(crs)
    if extent is not None:
        rows = rows[rows.geometry.intersects(extent)].reset_index(drop=True)
    if len(rows) == 0:
        return out.iloc[0:0]
    rows["X_CARRY"] = [c or p for c, p in zip(rows["X_CARRY"], rows["PERIOD"], strict=True)]
    rows["QDTYPE"] = codes.QDTYPE[3]
    carried = gpd.GeoDataFrame({c: rows[c] if c in rows else "" for c in out.columns if c != out.geometry.name},
                               geometry=rows.geometry.values, crs=crs)
    carried = carried.rename_geometry(out.geometry.name) if carried.geometry.name != out.geometry.name else carried
    for i, q in enumerate(carried["QDNM"]):
        _apply_verdict(carried, i, state.loc[q])
        carried.iat[i, carried.columns.get_loc("X_RULE")] = (
            f"延续：{'已确认违法（' + state.at[q, 'BYD'] + '），未销号' if state.at[q, 'CONFIRMED'] else '上期无法核实，待复核'}；"
            f"本期未检出，沿用 {carried['X_CARRY'].iat[i]} 期范围"
        )
    return carried


# -- developers and labels -------------------------------------------------------------------
def developer_watch_list(store: HistoryStore | str | Path, watch: WatchListConfig | None = None) -> pd.DataFrame:
    """The ``developers`` table: one row per developer (DPOZ) with a confirmed violation.

    The developer of a patch is the DPOZ a field team recorded, else the DPOZ of the
    project (PRNM) it was registered with. Confirmed violations with no known
    developer are left out.

    Returns
    -------
    DataFrame with DPOZ, N_CONFIRMED (confirmed violations ever, closed included),
    N_OPEN (not closed out), N_SENSITIVE (inside a sensitive area), AREA_HM2 (QAREA
    sum), QDNM (ids, "；"-joined), FLAG (黑名单, 重点关注名单 or ""), WATCH_AT,
    BLACKLIST_AT; worst first.
    """
    watch = watch or WatchListConfig()
    store = store if isinstance(store, HistoryStore) else load_store(store)
    state = store.state()
    confirmed = state[state["CONFIRMED"]] if len(state) else state
    latest = store.latest_patches()
    rows = []
    for q, s in confirmed.iterrows():
        reg = latest.loc[q] if q in latest.index else None
        who = s["DPOZ"] or (_text(reg["DPOZ"]) if reg is not None else "")
        if not who:
            continue
        rows.append({"DPOZ": who, "QDNM": q, "OPEN": not s["CLOSED"],
                     "SENS": bool(_text(reg["X_SENS"])) if reg is not None else False,
                     "AREA": float(reg["QAREA"]) if reg is not None else 0.0})
    if not rows:
        return _empty(DEVELOPER_FIELDS)
    table = pd.DataFrame(rows).groupby("DPOZ", sort=True).agg(
        N_CONFIRMED=("QDNM", "size"), N_OPEN=("OPEN", "sum"), N_SENSITIVE=("SENS", "sum"), AREA_HM2=("AREA", "sum"),
        QDNM=("QDNM", lambda s: "；".join(sorted(s))),
    ).reset_index()
    flags = []
    for n, sens in zip(table["N_CONFIRMED"], table["N_SENSITIVE"], strict=True):
        if n >= watch.blacklist_at or (watch.blacklist_sensitive and sens > 0):
            flags.append(BLACKLIST)
        elif n >= watch.watch_at:
            flags.append(WATCH)
        else:
            flags.append("")
    table["FLAG"] = flags
    table["WATCH_AT"] = watch.watch_at
    table["BLACKLIST_AT"] = watch.blacklist_at
    table["AREA_HM2"] = table["AREA_HM2"].round(4)
    for c in ("N_CONFIRMED", "N_OPEN", "N_SENSITIVE", "WATCH_AT", "BLACKLIST_AT"):
        table[c] = table[c].astype("int64")
    rank = table["FLAG"].map({BLACKLIST: 0, WATCH: 1}).fillna(2)
    table = table.assign(_rank=rank).sort_values(["_rank", "N_CONFIRMED", "DPOZ"], ascending=[True, False, True])
    return table.drop(columns="_rank")[list(DEVELOPER_FIELDS)].reset_index(drop=True)


def verified_labels(store: HistoryStore | str | Path) -> gpd.GeoDataFrame:
    """Field-verified patches as training labels (for ``swc-rs train``).

    Every patch whose current RST is 已复核, with its last registered geometry and
    the verdict's QTYPE (非生产建设项目 for false alarms), BYD (``""`` for false
    alarms) and X_REASON.

    Returns
    -------
    GeoDataFrame (EPSG:4490) with QDNM, QTYPE, BYD, X_REASON, geometry.
    """
    store = store if isinstance(store, HistoryStore) else load_store(store)
    state = store.state()
    latest = store.latest_patches()
    sel = state[(state["RST"] == CHECKED) & state.index.isin(latest.index)] if len(state) else state
    qdnm = list(sel.index)
    frame = pd.DataFrame({
        "QDNM": qdnm,
        "QTYPE": [sel.at[q, "QTYPE"] or _text(latest.at[q, "QTYPE"]) for q in qdnm],
        "BYD": ["" if sel.at[q, "FALSE_ALARM"] else (sel.at[q, "BYD"] or _text(latest.at[q, "BYD"])) for q in qdnm],
        "X_REASON": [sel.at[q, "X_REASON"] if sel.at[q, "FALSE_ALARM"] else "" for q in qdnm],
    }, dtype=object)
    geoms = latest.loc[qdnm].geometry.values if qdnm else gpd.GeoSeries([], crs=STORE_CRS).values
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=STORE_CRS)


def scene_extent(bounds: tuple[float, float, float, float], crs, to_crs) -> shapely.Geometry:
    """A scene's bounding box in ``to_crs`` (for :func:`apply_history`'s ``extent``)."""
    return gpd.GeoSeries([shapely.box(*bounds)], crs=crs).to_crs(to_crs).iloc[0]
