"""pgRouting baselines for bench/routing.py and bench/coverage.py: the same directed graph
(riskmap's node and edge arrays) in a table of the PostGIS test server, queries timed only.

The server is ``--postgis URL``, else ``$RISKMAP_TEST_POSTGIS_URL``, else the local test server
of ``.ci/postgis.sh``. Without pgRouting the benchmarks print :data:`INSTALL` and go on.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

DEFAULT_PG = "postgresql://riskmap@127.0.0.1:55432/riskmap_test"
INSTALL = ("apt-get install -y postgresql-15-pgrouting, then CREATE EXTENSION pgrouting; in "
           "the test database")
SCHEMA = "bench_pgr"

__all__ = ["DEFAULT_PG", "INSTALL", "connect", "drop", "load_edges", "server_url"]


def server_url(arg: str | None) -> str | None:
    """The server to use: ``arg``, the environment, the default; None for ``none``."""
    url = arg or os.environ.get("RISKMAP_TEST_POSTGIS_URL") or DEFAULT_PG
    return None if url == "none" else url


def connect(url: str | None) -> tuple[Any, str]:
    """(connection, pgRouting version) or (None, why it is skipped)."""
    if url is None:
        return None, "--postgis none"
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install -e '.[bench]')"
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=3)
    except Exception as exc:  # no server
        return None, f"no PostgreSQL server at {url} ({str(exc).splitlines()[0][:80]})"
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    except Exception as exc:
        conn.close()
        return None, f"pgRouting is not available ({str(exc).splitlines()[0][:80]}): {INSTALL}"
    version = conn.execute("SELECT pgr_version()").fetchone()[0]
    conn.execute("SET jit = off")
    return conn, str(version)


def load_edges(conn: Any, table: str, u: np.ndarray, v: np.ndarray, cost: np.ndarray) -> float:
    """Directed edges ``u -> v`` with ``cost`` (finite only) into ``bench_pgr.<table>`` (id,
    source, target, cost, reverse_cost = -1), indexed on source and target; seconds taken."""
    ok = np.isfinite(cost)
    t = time.perf_counter()
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{table}")
    conn.execute(f"CREATE TABLE {SCHEMA}.{table} (id bigint, source bigint, target bigint, "
                 "cost float8, reverse_cost float8)")
    with conn.cursor() as cur, cur.copy(
            f"COPY {SCHEMA}.{table} (id, source, target, cost, reverse_cost) FROM STDIN") as cp:
        for i, (a, b, c) in enumerate(zip(u[ok].tolist(), v[ok].tolist(), cost[ok].tolist(),
                                          strict=True)):
            cp.write_row((i + 1, a, b, c, -1.0))
    conn.execute(f"CREATE INDEX ON {SCHEMA}.{table} (source)")
    conn.execute(f"CREATE INDEX ON {SCHEMA}.{table} (target)")
    conn.execute(f"VACUUM ANALYZE {SCHEMA}.{table}")
    return time.perf_counter() - t


def drop(conn: Any) -> None:
    """Remove the benchmark's tables and close the connection."""
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.close()
