"""No production module opens the store with GDAL (issue 11).

pyogrio's GDAL carries its own copy of SQLite. POSIX file locks belong to the process, so when
that copy closes a WAL GeoPackage it believes it is the last user and removes the ``-wal`` and
``-shm`` files under the process's own sqlite3 connections ("disk I/O error", lost commits).
The store is therefore read and written with sqlite3 only; GDAL touches only files that are not
the store: users' files being imported, the temporary file a write stages, exported outputs.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {
    "layers/readers.py",     # users' input files
    "layers/gpkg_write.py",  # the staging file of a store write
    "layers/writers.py",     # exported findings files
    "layers/dask_engine.py",  # the engine's own part files
}


def _pyogrio_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {"pyogrio"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pyogrio"):
            lines.append(node.lineno)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Name) and base.id in names:
                lines.append(node.lineno)
    return lines


def test_only_allowed_modules_call_gdal():
    offenders = {}
    for pkg in ("geo", "layers", "api", "maps"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in ALLOWED:
                continue
            calls = _pyogrio_calls(path)
            if calls:
                offenders[rel] = calls
    assert offenders == {}, f"GDAL (pyogrio) used outside {sorted(ALLOWED)}: {offenders}"


def test_checker_finds_a_planted_call(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pyogrio\n\ndef f(p):\n    return pyogrio.read_dataframe(p)\n")
    assert _pyogrio_calls(bad) == [4]
