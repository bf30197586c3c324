"""A throwaway PostgreSQL/PostGIS server for the tests (and ``make test-pg``).

Debian's ``postgresql`` and ``postgis`` packages (installed by ``.ci/run``): a cluster
made with ``initdb`` in a temporary folder, listening only on a Unix socket there, torn
down (stopped and removed) afterwards. As root the server runs as the ``postgres`` user
(PostgreSQL refuses root). :func:`server` raises :class:`Unavailable` with the reason
when no server can start, so that the tests skip with it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class Unavailable(RuntimeError):
    """No PostgreSQL/PostGIS server can be started here; the message says why."""


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise Unavailable("PostgreSQL is not installed (Debian: apt-get install postgresql postgresql-postgis)")
    return Path(found[-1]).parent


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Start a server; yields the URL of its database ``swc`` (PostGIS available)."""
    try:
        import psycopg  # noqa: F401
    except ImportError as err:
        raise Unavailable("psycopg is not installed (pip install 'swc-rs[postgres]')") from err
    bindir = _bin()
    version = bindir.parent.name
    if not glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"):
        raise Unavailable(f"PostGIS is not installed for PostgreSQL {version} (apt-get install postgresql-postgis)")
    root = Path(tempfile.mkdtemp(prefix="swc-pg-", dir="/tmp"))
    data, socket = root / "data", root
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as err:
            raise Unavailable("running as root and there is no postgres user to run the server") from err
        os.chown(root, user.pw_uid, user.pw_gid)

    def run(*args, check=True):
        argv = [str(a) for a in args]
        if user is not None:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)

    try:
        try:
            run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "swc", "--no-sync", "-E", "UTF8")
            run(bindir / "pg_ctl", "-D", data, "-w", "-l", root / "log", "-o",
                f"-k {socket} -c listen_addresses='' -c fsync=off", "start")
            run(bindir / "createdb", "-h", socket, "-U", "swc", "swc")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            detail = getattr(err, "stderr", "") or str(err)
            raise Unavailable(f"the server did not start: {detail.strip()[-300:]} {log[-300:]}") from err
        yield f"postgresql://swc@/swc?host={socket}"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def reset(url: str) -> None:
    """Drop the store's tables (as the database owner, who may; the app role may not
    change the audit trail, but the owner can drop the whole store)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS store_info, patches, verifications, store_log, developers CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS swc_append_only() CASCADE")
