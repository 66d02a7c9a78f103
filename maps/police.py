"""The traffic police map: published hazmat routes, restricted zones with hours and authority,
``hazmat=no`` roads, route-check findings and a route request form; plus a clean publish view
(no internal findings; title, legend, date, issuing authority and notice number).
"""

from __future__ import annotations

from collections.abc import Mapping

import folium
import geopandas as gpd

from maps.base import MapOptions, findings_spec, make_map, text
from maps.compose import FindingsInput, LayerInput, add, concat_findings, get, group, select_kinds
from maps.styles import spec

__all__ = ["build_police"]


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
        add(app, spec("roads", visible=True), roads, flist)
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
        if route_url:
            app.set_route_form(route_url, depart_at=None)
    return m


def _first(gdf: object, column: str) -> str | None:
    if isinstance(gdf, gpd.GeoDataFrame) and column in gdf.columns:
        vals = gdf[column].dropna().astype(str)
        vals = vals[vals != ""]
        if len(vals):
            return str(vals.iloc[0])
    return None
