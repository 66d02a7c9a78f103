"""PostGIS pushdown of the pipeline check's candidate search (``--engine postgis``).

When the store is PostGIS, the (pipeline, building) candidate search runs in the database:
the pipelines are copied into a temporary table in the analysis CRS, cut with
``ST_Subdivide(ST_Segmentize(…))`` into short pieces, and joined to the buildings with
``ST_DWithin`` — first ``&&`` against the piece's envelope expanded to degrees (so the GiST
index on the EPSG:4490 geometry is used), then the exact test in the analysis CRS. Only the
buildings near a pipeline leave the database; the exact check then runs in-process
(:func:`geo.pipelines.check_pipelines`) on them, so the findings equal the default engine's.

:func:`pipeline_pairs` returns the database's own pairs and distances (used by the tests to
show they match the in-process search: same pairs, distances within 1 cm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from geo.crs import analysis_crs, require_projected, to_analysis
from layers.errors import CRSError, StoreError
from layers.postgis import SRID, PostGISStore

__all__ = ["candidate_buildings", "check_pipelines_pushdown", "pipeline_pairs", "search_radius"]

_SEGMENT_M = 200.0
_PIECE_VERTICES = 8
# metres per degree, lower bounds (GRS80): latitude ≥ 110 574 m; longitude ≥ 111 320·cos(lat)
_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0


def search_radius(
    pipelines: gpd.GeoDataFrame, *, occupancy_rules: Sequence[Any], setback_rules: Sequence[Any]
) -> np.ndarray:
    """Per pipeline, a distance (m) beyond which no rule can produce a finding.

    :func:`geo.pipelines.search_radius` (the exact per-pipeline bound) plus a 1 m margin.
    """
    from geo.pipelines import search_radius as exact_radius

    return np.asarray(exact_radius(pipelines, occupancy_rules=occupancy_rules,
                                   setback_rules=setback_rules), dtype=float) + 1.0


def _epsg(crs: Any) -> int:
    code = CRS.from_user_input(crs).to_epsg()
    if code is None:
        raise CRSError(f"the PostGIS pushdown needs an EPSG-coded analysis CRS; got {crs}")
    return int(code)


def _stage_pipes(cur: Any, pipes: gpd.GeoDataFrame, radius: np.ndarray, epsg: int) -> None:
    """Temp tables ``riskmap_pipes`` and ``riskmap_pieces`` (dropped at commit)."""
    cur.execute("CREATE TEMP TABLE riskmap_pipes (line integer, radius double precision, "
                "geom geometry) ON COMMIT DROP")
    ewkb = shapely.to_wkb(shapely.set_srid(np.asarray(pipes.geometry.values), epsg),
                          hex=True, include_srid=True)
    with cur.copy("COPY riskmap_pipes (line, radius, geom) FROM STDIN") as copy:
        for i, (r, g) in enumerate(zip(radius, ewkb, strict=True)):
            copy.write_row((i, float(r), g))
    # Pieces in the analysis CRS, and their envelope in EPSG:4490 grown by the radius in
    # degrees (a lower bound of metres per degree at the piece's highest latitude, +1 %).
    cur.execute(
        "CREATE TEMP TABLE riskmap_pieces ON COMMIT DROP AS "
        "SELECT line, radius, geom, "
        "  ST_Expand(env, radius * 1.01 / (%s * cos(radians(least(89.0, "
        "            greatest(abs(ST_YMin(env)), abs(ST_YMax(env))))))) + 1e-7, "
        "            radius * 1.01 / %s + 1e-7) AS env "
        "FROM (SELECT line, radius, piece AS geom, ST_Envelope(ST_Transform(piece, %s)) AS env "
        "      FROM (SELECT line, radius, ST_Subdivide(ST_Segmentize(geom, %s), %s) AS piece "
        "            FROM riskmap_pipes) s) t",
        (_M_PER_DEG_LON_EQ, _M_PER_DEG_LAT, SRID, _SEGMENT_M, _PIECE_VERTICES),
    )
    cur.execute("CREATE INDEX ON riskmap_pieces USING gist (env)")
    cur.execute("ANALYZE riskmap_pieces")


def _project(pipelines: gpd.GeoDataFrame, crs: Any) -> gpd.GeoDataFrame:
    if crs is None:
        return to_analysis(pipelines)
    return to_analysis(pipelines, crs=crs)


def pipeline_pairs(
    store: PostGISStore,
    pipelines: gpd.GeoDataFrame,
    *,
    radius_m: np.ndarray | float,
    layer: str = "buildings",
) -> pd.DataFrame:
    """(pipeline, building) pairs closer than ``radius_m[line]``, found and measured in PostGIS.

    ``pipelines`` is projected (metres); distances are measured in its CRS. Returns columns
    ``line`` (position in ``pipelines``), ``building_id``, ``distance_m``, sorted by line and
    building id. Pairs at exactly the radius are included, as with ``dwithin``.
    """
    require_projected(pipelines, "pipelines")
    epsg = _epsg(pipelines.crs)
    radius = np.broadcast_to(np.asarray(radius_m, dtype=float), (len(pipelines),))
    with store.connect() as conn, conn.cursor() as cur:
        _stage_pipes(cur, pipelines, radius, epsg)
        cur.execute(_pairs_query(store, layer, epsg))
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=["line", "building_id", "distance_m"]).astype(
        {"line": np.intp, "distance_m": float})


def _pairs_query(store: PostGISStore, layer: str, epsg: int) -> Any:
    from psycopg import sql

    return sql.SQL(
        "SELECT s.line, b.id, min(ST_Distance(s.geom, ST_Transform(b.geometry, {e}))) "
        "FROM riskmap_pieces s JOIN {schema}.{layer} b "
        "ON b.geometry && s.env AND ST_DWithin(s.geom, ST_Transform(b.geometry, {e}), s.radius) "
        "GROUP BY s.line, b.riskmap_fid, b.id ORDER BY s.line, b.id"
    ).format(e=sql.Literal(epsg), schema=sql.Identifier(store.schema),
             layer=sql.Identifier(layer))


def candidate_buildings(
    store: PostGISStore,
    pipelines: gpd.GeoDataFrame,
    *,
    radius_m: np.ndarray | float,
    layer: str = "buildings",
) -> gpd.GeoDataFrame:
    """The buildings (all columns, EPSG:4490, stored order) within ``radius_m[line]`` of a
    pipeline; ``pipelines`` is projected (metres)."""
    from psycopg import sql

    require_projected(pipelines, "pipelines")
    epsg = _epsg(pipelines.crs)
    radius = np.broadcast_to(np.asarray(radius_m, dtype=float), (len(pipelines),))
    with store.connect() as conn, conn.cursor() as cur:
        _stage_pipes(cur, pipelines, radius, epsg)
        cur.execute(sql.SQL(
            "CREATE TEMP TABLE riskmap_cand ON COMMIT DROP AS "
            "SELECT DISTINCT b.riskmap_fid FROM riskmap_pieces s JOIN {schema}.{layer} b "
            "ON b.geometry && s.env "
            "AND ST_DWithin(s.geom, ST_Transform(b.geometry, {e}), s.radius)"
        ).format(e=sql.Literal(epsg), schema=sql.Identifier(store.schema),
                 layer=sql.Identifier(layer)))
        return store.read_in(cur, layer, where=sql.SQL(
            "riskmap_fid IN (SELECT riskmap_fid FROM riskmap_cand)"))


def check_pipelines_pushdown(
    store: PostGISStore,
    *,
    occupancy_rules: Sequence[Any],
    setback_rules: Sequence[Any],
    crs: Any = None,
    piece_length_m: float = 200.0,
    pipelines: gpd.GeoDataFrame | None = None,
    layer: str = "buildings",
) -> gpd.GeoDataFrame:
    """The pipeline check with the candidate search pushed into PostGIS.

    Same arguments and result as :func:`geo.pipelines.check_pipelines` on the store's layers;
    ``crs`` defaults to the analysis CRS of the pipelines.
    """
    from geo.pipelines import check_pipelines

    if not isinstance(store, PostGISStore):
        raise StoreError(f"the PostGIS engine needs a postgresql:// store; {store.url} is not "
                         "one (use the default engine, or import the data into PostGIS)")
    if pipelines is None:
        pipelines = store.read("pipelines")
    target = CRS.from_user_input(crs) if crs is not None else analysis_crs(pipelines)
    pipes = _project(pipelines, target)
    radius = search_radius(pipes, occupancy_rules=occupancy_rules, setback_rules=setback_rules)
    near = candidate_buildings(store, pipes.reset_index(drop=True), radius_m=radius, layer=layer)
    return check_pipelines(pipes, near.to_crs(target), occupancy_rules=occupancy_rules,
                           setback_rules=setback_rules, piece_length_m=piece_length_m)

