"""Shared helpers for tests that need a live PostgreSQL/PostGIS server.

``RISKMAP_TEST_POSTGIS_URL`` names the server (``.ci/run`` and ``make postgis`` start one on
127.0.0.1 and print the URL). Without it the PostGIS variants are skipped with a visible
reason — except in CI (``CI=true``), where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["postgis_url", "schema_url", "scratch_schema"]

ENV = "RISKMAP_TEST_POSTGIS_URL"


def postgis_url() -> str:
    """The test server URL, or skip (fail in CI) when none is configured."""
    url = os.environ.get(ENV, "").strip()
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {ENV} is unset: .ci/run must start PostGIS "
                    "(bash .ci/postgis.sh) and export the URL it prints")
    pytest.skip(f"PostGIS variant skipped: {ENV} is unset (run `make postgis` and export "
                "the URL it prints)")


def schema_url(url: str, schema: str) -> str:
    """``url`` with ``?schema=`` set (keeping any other query parameters)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}schema={schema}"


@contextmanager
def scratch_schema(url: str) -> Iterator[str]:
    """A fresh schema name, dropped (with everything in it) afterwards; yields the store URL."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        yield schema_url(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
