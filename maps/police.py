"""The traffic police map: published hazmat routes, restricted zones with hours and authority,
``hazmat=no`` roads, route-check findings and a route request form; plus a clean publish view
(no internal findings; title, legend, date, issuing authority and notice number).
"""

from __future__ import annotations

from collections.abc import Mapping

import folium
import geopandas as gpd

from maps.base import STATIC_PREFIX, MapOptions, findings_spec, make_map, text
from maps.compose import FindingsInput, LayerInput, add, concat_findings, get, group, select_kinds
from maps.styles import spec

__all__ = ["POLICE_JS", "ROUTE_ALTERNATIVES", "build_police", "zone_table"]

# The police map's own browser code (route form, zone labels), loaded after riskmap.js.
POLICE_JS = ("riskmap_police", f"{STATIC_PREFIX}/riskmap/police.js")
# Alternatives the route form asks for by default (POST /routes takes 1-5).
ROUTE_ALTERNATIVES = 3
# Zone labels (id and hours) from this zoom; tooltips at every zoom.
ZONE_LABEL_MIN_ZOOM = 14


def build_police(
    layers: Mapping[str, LayerInput],
    findings: FindingsInput = None,
    *,
    options: MapOptions | None = None,
    publish: bool = False,
    route_url: str | None = "/routes",
    authority: str | None = None,
    notice: str | None = None,
    date: str | None = None,
) -> folium.Map:
    """The police map; ``publish=True`` gives the public notice view.

    ``layers``: ``restricted_zones``, ``hazmat_routes``, ``roads`` (``hazmat=no`` roads are
    drawn on their own), optionally ``sites`` (depots). ``findings``: route-check findings.
    ``route_url``: the routing API (``POST``) for the request form (None: no form). In the
    publish view the authority and notice default to those of the published routes/zones.
    """
    options = options or MapOptions()
    zones = get(layers, "restricted_zones")
    routes = get(layers, "hazmat_routes")
    roads = get(layers, "roads")
    title = text("危险化学品运输车辆通行路线及限行区域", "Hazardous-chemical vehicle routes and restricted zones")
    m, app = make_map(options, title=title)
    m.default_js = [*m.default_js, POLICE_JS]
    fnd = None if publish else concat_findings(findings)
    flist = [fnd]

    if publish:
        if isinstance(routes, gpd.GeoDataFrame) and "status" in routes.columns:
            routes = routes[routes["status"].astype(str) == "published"]
        authority = authority or _first(routes, "authority") or _first(zones, "authority")
        notice = notice or _first(zones, "notice")
        app.set_publish(title=title, authority=authority, notice=notice,
                        date=date or "",
                        text_=text("危化品运输车辆须按公布路线和时段通行，禁止驶入禁行区域。",
                                   "Hazmat vehicles must keep to the published routes and hours "
                                   "and must not enter forbidden zones."))
    else:
        # roads with their names (tooltips) under everything
        add(app, spec("roads", visible=True, tooltip="name"), roads, flist)
        add(app, spec("sites", visible=False), get(layers, "sites"), flist)

    add(app, spec("restricted_zones"), zones, flist)
    if isinstance(roads, gpd.GeoDataFrame) and "hazmat" in roads.columns:
        no = roads[roads["hazmat"].astype(str) == "no"]
        if len(no):
            add(app, spec("roads", id="roads_hazmat_no", zh="禁止危化品车辆通行道路",
                          en="Roads closed to hazmat vehicles", group="routes",
                          style={"color": "#6a51a3", "weight": 4, "dashArray": "2 6"},
                          collection=None), no, flist)
    add(app, spec("hazmat_routes"), routes, flist)

    if not publish:
        rc = select_kinds(fnd, prefix=("route",), layers=("hazmat_routes",))
        if rc is not None:
            group(app, "findings")
            app.add_layer(findings_spec("route_findings", zh="路线核查问题", en="Route-check findings",
                                        kind="line"), rc)
    # police.js: zone tooltips/labels with hours; the route form unless publishing
    app.config["police"] = {"url": None if publish else route_url, "departAt": None,
                            "alternatives": ROUTE_ALTERNATIVES, "zones": zone_table(zones),
                            "labelMinZoom": ZONE_LABEL_MIN_ZOOM}
    return m


def zone_table(zones: object) -> list[dict[str, str]]:
    """Id, name, rule and hours of each restricted zone, for the route form (permit zones,
    zone names in reasons) and the zone labels; hours "" = all day."""
    if not isinstance(zones, gpd.GeoDataFrame) or "id" not in zones.columns:
        return []
    cols = {c: (zones[c] if c in zones.columns else None) for c in ("name", "rule", "hours")}
    out = []
    for i, zid in enumerate(zones["id"].astype(str)):
        row = {"id": zid}
        for c, col in cols.items():
            v = None if col is None else col.iloc[i]
            row[c] = "" if v is None or (isinstance(v, float) and v != v) else str(v)
        out.append(row)
    return out


def _first(gdf: object, column: str) -> str | None:
    if isinstance(gdf, gpd.GeoDataFrame) and column in gdf.columns:
        vals = gdf[column].dropna().astype(str)
        vals = vals[vals != ""]
        if len(vals):
            return str(vals.iloc[0])
    return None
