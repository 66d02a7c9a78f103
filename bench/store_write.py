"""Benchmark: replacing a small layer in a big GeoPackage store — an SQLite transaction in
place (``GeoPackageStore.write`` today) against the old copy-and-rename write, in one run.

    .venv/bin/python bench/store_write.py [--n 1m] [--repeat 7] [--old-repeat 3]

The store is the demo district at ``--n`` buildings (built once with ``write_demo`` and cached
in ``bench/out/``, shared with ``bench/scale.py``; about 1–2 min to build at 1 M). The bench
works on a copy of it (``bench/out/store_write.gpkg``, made before timing) and replaces a
12-feature layer (the first 12 fire stations) ``--repeat`` times: median and spread, whether
the file was copied (inode, size, temporary files left beside it). Then the old method — copy
the whole file, write the layer into the copy with pyogrio, rename it over the original,
kept below as ``old_copy_write`` — ``--old-repeat`` times on the same file, and the ratio.
Last, the median of appending 2,000 buildings (``GeoPackageStore.append``), for scale, and
what reading the store with sqlite3 (``layers.gpkg_read``, which the store uses so that no second
SQLite runs beside its writers) costs against pyogrio/GDAL: all buildings, and a bbox.
Issue 11's target: < 0.3 s for the replace, and no copy of the file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the repository first; not bench/ itself (bench/api.py would shadow the api package)
sys.path[:] = [str(ROOT), *(p for p in sys.path
                            if p and Path(p).resolve() not in (ROOT, ROOT / "bench"))]

import geopandas as gpd  # noqa: E402
import pyogrio  # noqa: E402
from shapely.geometry import box  # noqa: E402

from layers.store import GeoPackageStore  # noqa: E402

OUT = ROOT / "bench" / "out"
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
BASE = 24_000  # buildings of the demo at scale 1 (approx.), as in bench/scale.py
LAYER = "fire_stations"
BBOX = (117.25, 34.80, 117.27, 34.82)  # ~2 km square in the demo district


def demo_for(n: int) -> tuple[Path, int]:
    """The demo GeoPackage with about ``n`` buildings (built once, cached); its building count."""
    from layers.demo import manifest_path, write_demo

    scale = round(n / BASE, 3)
    path = OUT / f"demo_{scale:g}.gpkg"
    if not path.exists():
        t = time.perf_counter()
        print(f"  building the demo at --scale {scale:g} …", file=sys.stderr, flush=True)
        write_demo(path, seed=42, scale=scale)
        print(f"  built in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    return path, int(manifest["counts"]["buildings"])


# --- the old method (layers/store.py before issue 11), kept as the baseline ------------------
@contextlib.contextmanager
def _old_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # the old store could not run here at all
        yield
        return
    with open(str(path) + ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def old_copy_write(path: Path, layers: Mapping[str, gpd.GeoDataFrame]) -> None:
    """Copy the file, write the layers into the copy, rename it over the original."""
    with _old_lock(path):
        fd, tmp = tempfile.mkstemp(prefix=".riskmap-", suffix=".gpkg", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            shutil.copy2(path, tmp)
            for name, gdf in layers.items():
                pyogrio.write_dataframe(gdf, tmp, layer=name, driver="GPKG", use_arrow=True,
                                        layer_options={"OVERWRITE": "YES",
                                                       "SPATIAL_INDEX": "YES"})
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(path) + ".lock")


# --- measuring ---------------------------------------------------------------------------------
def _times(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".riskmap-"))


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the file (the old method copies the file alone)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()


def _buildings(n: int) -> gpd.GeoDataFrame:
    """``n`` new buildings (ids not in the demo) north of the district."""
    x0, y0, step = 117.10, 35.20, 0.0002
    geoms = [box(x0 + (i % 100) * step, y0 + (i // 100) * step,
                 x0 + (i % 100) * step + step / 2, y0 + (i // 100) * step + step / 2)
             for i in range(n)]
    return gpd.GeoDataFrame({"id": [f"BENCH-{i}" for i in range(n)], "use": ["office"] * n,
                             "floors": [2] * n}, geometry=geoms, crs=4490)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="1m", choices=sorted(SIZES),
                    help="buildings of the demo store (default 1m)")
    ap.add_argument("--repeat", type=int, default=7, help="replaces timed (default 7)")
    ap.add_argument("--old-repeat", type=int, default=3,
                    help="copy-and-rename writes timed (default 3)")
    a = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    demo, count = demo_for(SIZES[a.n])
    work = OUT / "store_write.gpkg"
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(work) + suffix)
    shutil.copy(demo, work)
    store = GeoPackageStore(work)
    small = store.read(LAYER).head(12)
    assert len(small) == 12, f"the demo has fewer than 12 {LAYER}"
    size0, inode0 = work.stat().st_size, work.stat().st_ino
    print(f"store: {count:,} buildings, {size0 / 1e6:.0f} MB ({demo.name}, copied to "
          f"{work.name}); replacing layer {LAYER!r} with 12 features", file=sys.stderr)

    store.write({LAYER: small})  # first write: switches the copy to WAL, not timed
    new = _times(lambda: store.write({LAYER: small}), a.repeat)
    wal = Path(str(work) + "-wal")
    after = (work.stat().st_size, work.stat().st_ino, _leftovers(work),
             wal.stat().st_size if wal.exists() else 0)
    assert len(store.read(LAYER)) == 12

    appended = _buildings(2000)
    before = len(store.read("buildings", columns=["id"]))
    app = []
    for k in range(3):
        batch = appended.assign(id=[f"BENCH-{k}-{i}" for i in range(len(appended))])
        t = time.perf_counter()
        total = store.append("buildings", batch)
        app.append(time.perf_counter() - t)
    assert total == before + 3 * len(appended)

    # the store reads with sqlite3 (layers.gpkg_read), not GDAL: what that costs
    read_sqlite = _times(lambda: store.read("buildings"), 2)
    read_bbox = _times(lambda: store.read("buildings", bbox=BBOX), 3)
    read_gdal = _times(lambda: pyogrio.read_dataframe(work, layer="buildings", use_arrow=True),
                       2)
    gdal_bbox = _times(lambda: pyogrio.read_dataframe(work, layer="buildings", use_arrow=True,
                                                      bbox=BBOX), 3)

    _checkpoint(work)
    old = _times(lambda: old_copy_write(work, {LAYER: small}), a.old_repeat)
    old_inode_changed = work.stat().st_ino != inode0

    med_new, med_old = statistics.median(new), statistics.median(old)
    print(f"\nReplace a 12-feature layer in a store of {count:,} buildings "
          f"({size0 / 1e6:.0f} MB); median of {a.repeat} (transaction) / {a.old_repeat} "
          "(copy-and-rename), same run")
    print(f"  {'method':<34}{'median s':>10}{'min s':>9}{'max s':>9}")
    print(f"  {'SQLite transaction in place':<34}{med_new:>10.3f}{min(new):>9.3f}"
          f"{max(new):>9.3f}")
    print(f"  {'old: copy file, write, rename':<34}{med_old:>10.3f}{min(old):>9.3f}"
          f"{max(old):>9.3f}")
    print(f"  ratio old / transaction: {med_old / med_new:.0f}x   target < 0.3 s: "
          f"{'met' if med_new < 0.3 else 'NOT met'}")
    print(f"  transaction: inode unchanged {after[1] == inode0}; file {size0 / 1e6:.1f} MB -> "
          f"{after[0] / 1e6:.1f} MB (WAL {after[3] / 1e6:.1f} MB); temporary files left: "
          f"{after[2] or 'none'}")
    print(f"  old method: inode changed {old_inode_changed} (a full copy per write)")
    print(f"  append 2,000 buildings (transaction, id check in SQL): median "
          f"{statistics.median(app):.3f} s of 3")
    print(f"  read all buildings: store (sqlite3) {min(read_sqlite):.2f} s, pyogrio/GDAL "
          f"{min(read_gdal):.2f} s; a 2 km bbox: {statistics.median(read_bbox):.3f} s vs "
          f"{statistics.median(gdal_bbox):.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
