"""The history store in PostgreSQL/PostGIS (``--store postgresql://…``), for several analysts.

The same tables as the GeoPackage store (:mod:`swc_rs.verification`): ``store_info``,
``patches`` (PostGIS MultiPolygon, EPSG:4490), ``verifications`` (the audit trail),
``store_log`` and ``developers``, created on first use. The audit trail is append-only
in the database itself: triggers refuse every UPDATE, DELETE and TRUNCATE of
``verifications``, ``store_log`` and ``patches`` for any role (``developers`` is a
derived table, rewritten on every write). An import or a registration is one
transaction that first takes a transaction-level advisory lock, so writers are
serialised (as the GeoPackage store's file lock does) and a failed or killed one leaves
nothing. ``RECORD_KEY`` is also a UNIQUE constraint: a file imported twice adds nothing.

The URL is any libpq connection URI (``postgresql://user@host:5432/db``,
``postgresql:///db?host=/run/postgresql``); give passwords through ``PGPASSWORD`` or
``~/.pgpass``, not in the URL (a password in it is never printed or recorded).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from swc_rs.errors import InputFileError

SCHEMES = ("postgresql://", "postgres://")
#: Key of the advisory lock that serialises the writers of one database.
LOCK_KEY = 0x5357_4352  # "SWCR"
APPEND_ONLY = ("verifications", "store_log", "patches")


def is_url(store: object) -> bool:
    return isinstance(store, str) and store.startswith(SCHEMES)


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    return re.sub(r"^(postgres(?:ql)?://[^:/@]*):[^@]*@", r"\1:***@", url)


def connect(url: str):
    try:
        import psycopg
    except ImportError as err:
        raise InputFileError("the PostgreSQL store needs psycopg, which is not installed", path=redacted(url),
                             fix='pip install "swc-rs[postgres]" (psycopg 3), or use a GeoPackage store') from err
    try:
        return psycopg.connect(url, autocommit=False, connect_timeout=10)
    except psycopg.Error as err:
        raise InputFileError(f"cannot connect to the history database ({str(err).strip().splitlines()[0][:200]})",
                             path=redacted(url), fix="check the URL and that the server runs; give the password with "
                             "PGPASSWORD or ~/.pgpass") from err


@contextlib.contextmanager
def transaction(url: str) -> Iterator:
    """One transaction holding the store's writer lock: committed when the block ends,
    rolled back when it raises (or when the process dies)."""
    conn = connect(url)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            ensure_schema(conn, url)
            yield conn
    finally:
        conn.close()


def _columns(fields: Sequence[str], floats: Sequence[str] = (), ints: Sequence[str] = ()) -> str:
    def kind(name):
        return "double precision" if name in floats else "bigint" if name in ints else "text"

    return ", ".join(f'"{f}" {kind(f)}' for f in fields)


def ensure_schema(conn, url: str) -> None:
    """Create the tables, constraints and append-only triggers when absent."""
    from swc_rs import __version__
    from swc_rs.verification import (
        _FLOATS,
        DEVELOPER_FIELDS,
        LOG_FIELDS,
        RECORD_FIELDS,
        RECORD_KEY,
        SCHEMA_VERSION,
        STORE_KIND,
        STORE_PATCH_FIELDS,
    )

    if conn.execute("SELECT to_regclass('store_info')").fetchone()[0] is not None:
        kind = conn.execute("SELECT \"VALUE\" FROM store_info WHERE \"KEY\" = 'KIND'").fetchone()
        if not kind or kind[0] != STORE_KIND:
            raise InputFileError("the database has a store_info table that is not a swc-rs store's", path=redacted(url),
                                 fix="give a database (or a fresh one) kept for the swc-rs history store")
        return
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except Exception as err:  # psycopg.Error: not installed or not allowed
        raise InputFileError(f"PostGIS is not available in the database ({str(err).strip().splitlines()[0][:160]})",
                             path=redacted(url), fix="install PostGIS (Debian: postgresql-15-postgis-3) and let the "
                             "store's role create it, or run CREATE EXTENSION postgis as the database owner") from err
    ints = ("RECORD_ID", "N_ROWS", "N_RECORDS", "N_PATCHES", "N_CONFIRMED", "N_OPEN", "N_SENSITIVE", "WATCH_AT",
            "BLACKLIST_AT")
    key = ", ".join(f'"{k}"' for k in RECORD_KEY)
    conn.execute(f"""
        CREATE TABLE store_info ("KEY" text PRIMARY KEY, "VALUE" text);
        CREATE TABLE patches ({_columns(STORE_PATCH_FIELDS, _FLOATS)}, geom geometry(MultiPolygon, 4490),
                              UNIQUE ("QDNM", "RUN_ID"));
        CREATE TABLE verifications ({_columns(RECORD_FIELDS, ints=ints)}, PRIMARY KEY ("RECORD_ID"), UNIQUE ({key}));
        CREATE TABLE store_log ({_columns(LOG_FIELDS, ints=ints)});
        CREATE TABLE developers ({_columns(DEVELOPER_FIELDS, ('AREA_HM2',), ints)});
        CREATE FUNCTION swc_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the swc-rs audit trail is append-only: % of % refused', TG_OP, TG_TABLE_NAME;
        END $$;
    """)
    for table in APPEND_ONLY:
        conn.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                     "FOR EACH STATEMENT EXECUTE FUNCTION swc_append_only()")
    from swc_rs.verification import _now

    conn.cursor().executemany('INSERT INTO store_info ("KEY", "VALUE") VALUES (%s, %s)', [
        ("KIND", STORE_KIND), ("SCHEMA_VERSION", SCHEMA_VERSION), ("CREATED_AT", _now()),
        ("CREATED_BY", f"swc-rs {__version__}")])


def _frame(conn, table: str, fields: Sequence[str], extra: str = "") -> pd.DataFrame:
    names = ", ".join(f'"{f}"' for f in fields)
    rows = conn.execute(f"SELECT {names}{extra} FROM {table}").fetchall()
    return pd.DataFrame(rows, columns=list(fields) + (["_wkb"] if extra else []))


def read(conn) -> tuple[gpd.GeoDataFrame, pd.DataFrame, pd.DataFrame] | None:
    """``(patches, verifications, log)`` of the store, or None when it has no tables yet."""
    from swc_rs.verification import LOG_FIELDS, RECORD_FIELDS, STORE_CRS, STORE_PATCH_FIELDS

    if conn.execute("SELECT to_regclass('store_info')").fetchone()[0] is None:
        return None
    raw = _frame(conn, "patches", STORE_PATCH_FIELDS, ", ST_AsBinary(geom)")
    geoms = shapely.from_wkb([bytes(b) if b is not None else None for b in raw.pop("_wkb")])
    patches = gpd.GeoDataFrame(raw, geometry=gpd.GeoSeries(geoms, crs=STORE_CRS), crs=STORE_CRS)
    verifications = _frame(conn, "verifications", RECORD_FIELDS)
    verifications["RECORD_ID"] = verifications["RECORD_ID"].astype("int64")
    return patches, verifications, _frame(conn, "store_log", LOG_FIELDS)


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _insert(conn, table: str, frame: pd.DataFrame, fields: Sequence[str]) -> None:
    if not len(frame):
        return
    names = ", ".join(f'"{f}"' for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    rows = [tuple(_plain(v) for v in row) for row in frame[list(fields)].itertuples(index=False)]
    conn.cursor().executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


def append(conn, new_patches: gpd.GeoDataFrame, new_records: pd.DataFrame, entry: pd.DataFrame,
           developers: pd.DataFrame) -> None:
    """Append to the store inside the open :func:`transaction` (developers rewritten)."""
    from swc_rs.verification import DEVELOPER_FIELDS, LOG_FIELDS, RECORD_FIELDS, STORE_PATCH_FIELDS

    if len(new_patches):
        fields = list(STORE_PATCH_FIELDS)
        names = ", ".join(f'"{f}"' for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        multi = [g if g is None or g.geom_type == "MultiPolygon" else shapely.MultiPolygon(
            [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]) for g in new_patches.geometry.values]
        rows = [tuple(_plain(v) for v in row) + (shapely.to_wkb(g) if g is not None else None,)
                for row, g in zip(new_patches[fields].itertuples(index=False), multi, strict=True)]
        conn.cursor().executemany(f"INSERT INTO patches ({names}, geom) VALUES ({marks}, "
                                  "ST_SetSRID(ST_GeomFromWKB(%s), 4490))", rows)
    _insert(conn, "verifications", new_records, RECORD_FIELDS)
    _insert(conn, "store_log", entry, LOG_FIELDS)
    conn.execute("DELETE FROM developers")
    _insert(conn, "developers", developers, DEVELOPER_FIELDS)
