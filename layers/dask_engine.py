"""Scale-out pipeline check with dask-geopandas (``riskmap check pipelines --engine dask``).

Buildings are read in partitions (GeoPackage slices, PostGIS primary-key ranges or GeoParquet
files) and projected to one analysis CRS; each input partition keeps only the buildings within
the largest rule distance of a pipeline piece (an STRtree ``dwithin`` query — the map-side
filter, so that only candidates are shuffled). The candidates are then spatially partitioned
along a Hilbert curve (``hilbert_distance`` + ``set_index``), so each partition is a compact
patch of the district. The pipelines — small next to the buildings — are broadcast to every
worker. Each partition keeps the pipelines whose bounding box comes within the largest rule
distance of its patch and runs the ordinary in-process check
(:func:`geo.pipelines.check_pipelines`: STRtree ``dwithin`` over pipeline pieces, then exact
distances), then writes its findings as one GeoParquet part file. Nothing gathers all buildings
or all findings in one process; a ``.gpkg`` output is filled part by part.

Every finding concerns one (pipeline, building) pair, so the union of the partitions' findings
is exactly the default engine's result.

Works out of the box on a local cluster (``LocalCluster``, 2 workers) or on a running Dask
scheduler given by address (``--scheduler tcp://host:8786``); for a remote cluster the input
and the output directory must be reachable by the workers under the same paths.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from geo.crs import analysis_crs, to_analysis
from geo.linref import line_reference, pieces
from layers.errors import StoreError, missing_extra

__all__ = [
    "DaskRun",
    "buildings_frame",
    "check_pipelines_dask",
    "max_search_radius",
    "read_findings",
]

_PART_ROWS = 200_000


@dataclass(frozen=True)
class DaskRun:
    """Summary of a Dask run: where the findings went, how many buildings were read, how many
    were within reach of a pipeline (checked exactly), and how many findings."""

    out: str
    partitions: int
    buildings: int
    candidates: int
    findings: int
    seconds: float
    scheduler: str


# -- reading buildings in partitions -------------------------------------------------------
def _gpkg_slice(path: str, layer: str, start: int, stop: int) -> gpd.GeoDataFrame:
    """Features with fid in [start, stop), read with sqlite3 (never GDAL: its own SQLite copy
    would drop this process's WAL locks on the store, see layers/gpkg_read.py)."""
    from layers.store import GeoPackageStore

    return GeoPackageStore(path).read_fids(layer, np.arange(start, stop, dtype=np.int64))


def _gpkg_ranges(path: str, layer: str, rows: int) -> tuple[int, list[tuple[int, int]]]:
    """Row count and primary-key ranges [start, stop) splitting ``layer`` into about
    ``rows``-row slices (a key range is an index lookup; skipping features is a scan)."""
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        quoted = '"' + layer.replace('"', '""') + '"'
        pk = next(r[1] for r in con.execute(f"PRAGMA table_info({quoted})") if r[5])
        lo, hi, n = con.execute(f'SELECT MIN("{pk}"), MAX("{pk}"), COUNT(*) FROM {quoted}'
                                ).fetchone()
    finally:
        con.close()
    if not n:
        return 0, [(0, 0)]
    k = max(1, -(-int(n) // rows))
    step = -(-(int(hi) - int(lo) + 1) // k)
    return int(n), [(a, a + step) for a in range(int(lo), int(hi) + 1, step)]


def _pg_slice(url: str, layer: str, start: int, stop: int) -> gpd.GeoDataFrame:
    from layers.postgis import PostGISStore

    return PostGISStore(url).read_slice(layer, start, stop)


def buildings_frame(source: Any, *, layer: str = "buildings",
                    partition_rows: int = _PART_ROWS) -> Any:
    """A dask-geopandas frame of ``layer`` read lazily in partitions of ``partition_rows``.

    ``source`` is a GeoPackage path, a ``postgresql://`` store URL, a store object, or a
    GeoParquet file or directory (layer ignored).
    """
    return _source(source, layer=layer, partition_rows=partition_rows)[0]


def _source(source: Any, *, layer: str = "buildings",
            partition_rows: int = _PART_ROWS) -> tuple[Any, int | None]:
    """The frame and, when the source knows it, its number of rows."""
    try:
        import dask.dataframe as dd
        import dask_geopandas
    except ImportError as exc:
        raise missing_extra("dask-geopandas", extra="dask", feature="--engine dask") from exc

    from layers.postgis import PostGISStore, with_schema
    from layers.store import GeoPackageStore

    if isinstance(source, PostGISStore):  # its full URL (``store.url`` hides the password)
        source = with_schema(source._url, source.schema)
    elif isinstance(source, GeoPackageStore):
        source = source.path
    text = str(source)
    if text.startswith(("postgresql://", "postgres://")):
        from layers.postgis import PostGISStore

        store = PostGISStore(text)
        info = {i.name: i for i in store.layers()}
        if layer not in info:
            raise StoreError(f"store {store.url} has no layer {layer!r}")
        n = info[layer].count
        bounds = [(a, min(a + partition_rows, n)) for a in range(0, max(n, 1), partition_rows)]
        meta = store.read_slice(layer, 0, 0)
        return dd.from_map(_pg_slice, [text] * len(bounds), [layer] * len(bounds),
                           [b[0] for b in bounds], [b[1] for b in bounds], meta=meta,
                           enforce_metadata=False), n
    if text.lower().endswith(".gpkg"):
        n, ranges = _gpkg_ranges(text, layer, partition_rows)
        meta = _gpkg_slice(text, layer, 0, 0)
        return dd.from_map(_gpkg_slice, [text] * len(ranges), [layer] * len(ranges),
                           [r[0] for r in ranges], [r[1] for r in ranges],
                           meta=meta, enforce_metadata=False), n
    if text.lower().endswith(".parquet") or Path(text).is_dir():
        return dask_geopandas.read_parquet(text), None
    raise StoreError(f"cannot read buildings from {text!r}: expected a .gpkg, a "
                     "postgresql:// URL or GeoParquet")


# -- the check ------------------------------------------------------------------------------
def max_search_radius(
    pipelines: gpd.GeoDataFrame, *, occupancy_rules: Sequence[Any],
    setback_rules: Sequence[Any],
) -> float:
    """An upper bound (m) of the distance at which any rule can produce a finding: the largest
    :func:`geo.pipelines.search_radius` of the pipelines plus a 1 m margin."""
    from geo.pipelines import search_radius

    if len(pipelines) == 0:
        return 1.0
    radius = np.asarray(search_radius(pipelines, occupancy_rules=occupancy_rules,
                                      setback_rules=setback_rules), dtype=float)
    return float(np.nanmax(radius, initial=0.0)) + 1.0


def _near_pipelines(blds: gpd.GeoDataFrame, piece_geoms: np.ndarray,
                    radius_m: float) -> gpd.GeoDataFrame:
    """The buildings of a partition within ``radius_m`` of any pipeline piece."""
    import shapely

    if len(blds) == 0 or len(piece_geoms) == 0:
        return blds.iloc[:0]
    tree = shapely.STRtree(np.asarray(blds.geometry.values, dtype=object))
    hit = np.unique(tree.query(piece_geoms, predicate="dwithin", distance=radius_m)[1])
    return blds.iloc[hit]


def _check_partition(
    blds: gpd.GeoDataFrame, pipes: gpd.GeoDataFrame, *, index: int, crs: str, radius_m: float,
    occupancy_rules: Sequence[Any], setback_rules: Sequence[Any], piece_length_m: float,
    parts_dir: str,
) -> tuple[int, int, int]:
    """Check one partition and write its findings; return (index, buildings, findings)."""
    import shapely

    from geo.pipelines import check_pipelines

    n = len(blds)
    if n == 0:
        return index, 0, 0
    blds = blds.to_crs(crs) if CRS(blds.crs) != CRS(crs) else blds
    minx, miny, maxx, maxy = blds.total_bounds
    window = shapely.box(minx - radius_m, miny - radius_m, maxx + radius_m, maxy + radius_m)
    near = pipes.iloc[pipes.sindex.query(window)].sort_index()
    if near.empty:
        return index, n, 0
    # one thread per partition: dask runs the partitions in parallel already
    found = check_pipelines(near, blds.reset_index(drop=True), occupancy_rules=occupancy_rules,
                            setback_rules=setback_rules, piece_length_m=piece_length_m,
                            workers=1)
    if len(found):
        tmp = Path(parts_dir) / f".part.{index:05d}.parquet.tmp"
        found.to_parquet(tmp, index=False)
        os.replace(tmp, Path(parts_dir) / f"part.{index:05d}.parquet")
    return index, n, len(found)


@contextlib.contextmanager
def _client(scheduler: str | None, n_workers: int, memory_limit: str) -> Iterator[Any]:
    """A distributed client: a new LocalCluster (``None``/``"local"``), an existing scheduler
    by address, or no client for dask's own ``"threads"``/``"synchronous"`` schedulers."""
    if scheduler in ("threads", "synchronous", "processes"):
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise missing_extra("distributed", extra="dask", feature="--engine dask") from exc

    if scheduler in (None, "", "local"):
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          memory_limit=memory_limit, host="127.0.0.1", scheduler_port=0,
                          dashboard_address="127.0.0.1:0") as cluster, \
                Client(cluster) as client:
            yield client
    else:
        with Client(scheduler, timeout="30s") as client:
            yield client


def check_pipelines_dask(
    pipelines: gpd.GeoDataFrame,
    buildings: Any,
    *,
    occupancy_rules: Sequence[Any],
    setback_rules: Sequence[Any],
    out: str | os.PathLike[str],
    crs: CRS | str | int | None = None,
    piece_length_m: float = 200.0,
    npartitions: int | None = None,
    scheduler: str | None = None,
    n_workers: int = 2,
    memory_limit: str = "2.5GiB",
) -> DaskRun:
    """Run the pipeline check partition by partition with Dask.

    Parameters
    ----------
    pipelines
        The pipelines layer (any CRS; broadcast to every worker).
    buildings
        A dask-geopandas frame (see :func:`buildings_frame`), a GeoDataFrame or a source path/URL.
    out
        A directory for GeoParquet part files (``part.NNNNN.parquet``, one per partition with
        findings) or a ``.gpkg`` file (layer ``findings``, appended part by part).
    crs
        Analysis CRS (projected, metres); default: :func:`geo.crs.analysis_crs` of the pipelines.
    npartitions
        Hilbert partitions; default one per ~200 000 buildings, at least 2 per worker.
    scheduler
        ``None``/``"local"`` (a LocalCluster of ``n_workers``), a scheduler address
        (``tcp://host:8786``), or ``"threads"``/``"synchronous"``.
    """
    try:
        import dask
        import dask_geopandas
    except ImportError as exc:
        raise missing_extra("dask-geopandas", extra="dask", feature="--engine dask") from exc

    t0 = time.perf_counter()
    target = CRS.from_user_input(crs) if crs is not None else analysis_crs(pipelines)
    pipes = to_analysis(pipelines, crs=target).reset_index(drop=True)
    radius = max_search_radius(pipes, occupancy_rules=occupancy_rules,
                               setback_rules=setback_rules)
    total: int | None = None
    if isinstance(buildings, str | os.PathLike) or hasattr(buildings, "layers"):
        buildings, total = _source(buildings)
    elif isinstance(buildings, gpd.GeoDataFrame):
        total = len(buildings)
        buildings = dask_geopandas.from_geopandas(
            buildings, chunksize=_PART_ROWS, sort=False)
    out_path = Path(out)
    to_gpkg = out_path.suffix.lower() == ".gpkg"
    parts_dir = out_path.with_name(out_path.name + ".parts") if to_gpkg else out_path
    if parts_dir.exists():
        shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True)
    refs = [line_reference(g) for g in pipes.geometry.values]
    piece_geoms = pieces(refs, max_length_m=piece_length_m).geoms

    with _client(scheduler, n_workers, memory_limit) as client:
        if total is None:
            total = len(buildings)
        # 1. map side: keep the buildings within reach of a pipeline piece (STRtree dwithin);
        #    only they are shuffled, and they are few next to all buildings.
        near = buildings.to_crs(target).map_partitions(
            _near_pipelines, dask.delayed(piece_geoms, pure=True), radius,
            meta=buildings._meta.to_crs(target))
        near = near.persist()
        n_near = len(near)
        # 2. Hilbert-sort them into compact patches ("tasks" shuffle: partitions travel as
        #    pickled GeoDataFrames; the p2p shuffle's Arrow round trip loses the geometry type).
        nparts = npartitions or max(2 * n_workers, math.ceil(n_near / _PART_ROWS))
        bounds = near.total_bounds.compute() if n_near else (0.0, 0.0, 1.0, 1.0)
        hilbert = near.hilbert_distance(total_bounds=tuple(bounds), level=16)
        blds = near.set_index(hilbert, npartitions=nparts, sorted=False, shuffle_method="tasks")
        # 3. per partition: the exact check against the broadcast pipelines, one part file each
        pipes_ref: Any = (client.scatter(pipes, broadcast=True) if client is not None
                          else dask.delayed(pipes, pure=True))
        check = dask.delayed(_check_partition, pure=False)
        tasks = [
            check(part, pipes_ref, index=i, crs=target.to_wkt(), radius_m=radius,
                  occupancy_rules=[dict(r) for r in occupancy_rules],
                  setback_rules=[dict(r) for r in setback_rules],
                  piece_length_m=piece_length_m, parts_dir=str(parts_dir))
            for i, part in enumerate(blds.to_delayed())
        ]
        if client is not None:
            results = client.gather(client.compute(tasks))
        else:
            results = dask.compute(*tasks, scheduler=scheduler)
        used = ("local" if scheduler in (None, "", "local") else str(scheduler))
    n_find = sum(r[2] for r in results)
    if to_gpkg:
        _parts_to_gpkg(parts_dir, out_path)
        shutil.rmtree(parts_dir)
    return DaskRun(out=str(out_path), partitions=len(results), buildings=total,
                   candidates=n_near, findings=n_find, seconds=time.perf_counter() - t0,
                   scheduler=used)


def _part_files(parts_dir: Path) -> list[Path]:
    return sorted(parts_dir.glob("part.*.parquet"))


def _parts_to_gpkg(parts_dir: Path, out: Path) -> None:
    import pyogrio

    if out.exists():
        out.unlink()
    files = _part_files(parts_dir)
    for i, f in enumerate(files):
        part = gpd.read_parquet(f)
        pyogrio.write_dataframe(part, out, layer="findings", driver="GPKG", append=i > 0,
                                use_arrow=True)


def read_findings(out: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """All findings of a Dask run, sorted by ``finding_id`` (small outputs and tests)."""
    path = Path(out)
    if path.suffix.lower() == ".gpkg":
        import pyogrio

        frames = [pyogrio.read_dataframe(path, layer="findings")] if path.exists() else []
    else:
        frames = [gpd.read_parquet(f) for f in _part_files(path)]
    frames = [f for f in frames if len(f)]
    if not frames:
        from geo.findings import empty_findings

        return empty_findings(None)
    out_df = pd.concat(frames, ignore_index=True)
    gdf = gpd.GeoDataFrame(out_df, geometry="geometry", crs=frames[0].crs)
    return gdf.sort_values("finding_id", kind="stable").reset_index(drop=True)
