"""The overview map: all layers, findings by hazard-registry status, progress against the
plan's targets (rectification of occupancy / insufficient-distance hazards, HCA video cover).
"""

from __future__ import annotations

from collections.abc import Mapping

import folium
import geopandas as gpd
import pandas as pd

from maps.base import Categorical, Field, MapOptions, findings_spec, make_map, text
from maps.compose import FindingsInput, LayerInput, add, concat_findings, get, group
from maps.fire import REACH_KINDS, add_reach_layers, hydrants_near, lane_qualification
from maps.planner import COVERAGE_TARGETS, coverage_share, fmt_share
from maps.styles import spec, with_pressure_class

__all__ = ["HAZARD_URL", "REGISTRY_STATUSES", "build_overview", "progress_rows"]

# The hazard page a finding's popup links to (relative to the app).
HAZARD_URL = "/registry/hazards/{hazard_id}"

REGISTRY_STATUSES = (
    ("identified", "#d7191c", "待整改", "open"),
    ("rectifying", "#fdae61", "整改中", "rectifying"),
    ("rectified", "#a6d96a", "已整改", "rectified"),
    ("verified", "#1a9641", "已验收", "verified"),
    ("closed", "#1a9641", "已销号", "closed"),
    ("no_longer_detected", "#878787", "不再检出", "no longer detected"),
    ("unregistered", "#2c7bb6", "未登记", "not registered"),
)
_DONE = {"rectified", "verified", "closed"}


def progress_rows(registry: pd.DataFrame | None, coverage_overall: float | None,
                  *, year: int | None = None) -> list[tuple[list[object], str | None]]:
    """Rows (label, current, target, status) for the progress panel."""
    rows: list[tuple[list[object], str | None]] = []
    if registry is not None and len(registry) and "status" in registry.columns:
        reg = registry
        kinds = reg["kind"].astype(str) if "kind" in reg.columns else pd.Series("", index=reg.index)
        sel = reg[kinds.isin(["occupancy", "setback"])]
        if len(sel):
            done = float(sel["status"].astype(str).isin(_DONE).mean())
            rows.append(([text("占压及安全距离不足隐患整改率", "occupancy/setback hazards rectified"),
                          f"{fmt_share(done)} ({int(sel['status'].astype(str).isin(_DONE).sum())}"
                          f"/{len(sel)})", text("2022年底 100 %", "100 % by end-2022")],
                         "ok" if done >= 1.0 else "bad"))
        all_done = float(reg["status"].astype(str).isin(_DONE).mean())
        rows.append(([text("隐患整改率（全部）", "all hazards rectified"),
                      f"{fmt_share(all_done)} ({int(reg['status'].astype(str).isin(_DONE).sum())}"
                      f"/{len(reg)})", ""], None))
        counts = reg["status"].astype(str).value_counts()
        for value, _c, zh, en in REGISTRY_STATUSES:
            if value in counts:
                rows.append(([text(f"隐患：{zh}", f"hazards: {en}"), str(int(counts[value])), ""], None))
    if coverage_overall is not None:
        for y, t in COVERAGE_TARGETS:
            if year is None or y <= max(year, COVERAGE_TARGETS[-1][0]):
                rows.append(([text(f"高后果区视频监控覆盖率（{y}目标）", f"HCA video cover ({y} target)"),
                              fmt_share(coverage_overall), fmt_share(t)],
                             "ok" if coverage_overall >= t - 1e-9 else "bad"))
    return rows


def build_overview(
    layers: Mapping[str, LayerInput],
    findings: FindingsInput = None,
    *,
    registry: pd.DataFrame | None = None,
    coverage_overall: float | None = None,
    options: MapOptions | None = None,
) -> folium.Map:
    """The overview map: every layer (context layers hidden at first), findings coloured by
    registry status (``registry``: ``finding_id``, ``status``, optional ``kind``), and a
    progress panel against the plan's targets."""
    options = options or MapOptions()
    m, app = make_map(options, title=text("区域安全风险总览", "District safety overview"))
    fnd = concat_findings(findings)
    flist = [fnd]
    add(app, spec("roads"), get(layers, "roads"), flist)  # the offline base, on
    for name in ("buildings", "sites", "compounds", "cameras"):
        add(app, spec(name, visible=False), get(layers, name), flist)
    # an export keeps the hydrants near lane/hydrant findings, as the fire map's does
    add(app, spec("hydrants", visible=False), hydrants_near(get(layers, "hydrants"), fnd), flist)
    pipes = get(layers, "pipelines")
    if isinstance(pipes, gpd.GeoDataFrame):
        pipes = with_pressure_class(pipes)
    add(app, spec("pipelines"), pipes, flist)
    add(app, spec("hca"), get(layers, "hca"), flist)
    add(app, spec("construction_sites"), get(layers, "construction_sites"), flist)
    for name in ("pipeline_facilities", "warning_signs", "patrol_paths"):
        add(app, spec(name, visible=False), get(layers, name), flist)
    add(app, spec("restricted_zones"), get(layers, "restricted_zones"), flist)
    add(app, spec("hazmat_routes"), get(layers, "hazmat_routes"), flist)
    lanes = get(layers, "fire_lanes")
    if isinstance(lanes, gpd.GeoDataFrame):
        lanes = lane_qualification(lanes, fnd)
    add(app, spec("fire_lanes", visible=False), lanes, flist)
    add(app, spec("fire_stations"), get(layers, "fire_stations"), flist)

    mon = get(layers, "monitoring_coverage")
    if coverage_overall is None and isinstance(mon, gpd.GeoDataFrame):
        coverage_overall = coverage_share(mon)
    if registry is None:
        reg = layers.get("registry")
        registry = reg if isinstance(reg, pd.DataFrame) and len(reg) else None
    if fnd is not None:  # buildings beyond fire reach: own layers (tens of thousands)
        reach = fnd["kind"].isin([k for k, *_ in REACH_KINDS])
        add_reach_layers(app, fnd[reach] if reach.any() else None, visible=False)
        fnd = fnd[~reach] if (~reach).any() else None
    if fnd is not None:
        group(app, "findings")
        f = fnd.copy()
        labels = {v: text(zh, en) for v, _c, zh, en in REGISTRY_STATUSES}
        status_field = Field("registry_status", "登记状态", "registry status", enum=labels)
        status_classes = Categorical("registry_status", REGISTRY_STATUSES,
                                     title=text("隐患清单状态", "registry status"))
        link = (HAZARD_URL, text("隐患详情与整改记录", "hazard record"))
        if registry is not None and len(registry) and "finding_id" in registry.columns:
            st = registry.drop_duplicates("finding_id").set_index("finding_id")["status"]
            f["registry_status"] = f["finding_id"].map(st).fillna("unregistered")
            f["hazard_id"] = f["finding_id"].where(f["registry_status"] != "unregistered")
            fs = findings_spec("findings", extra_fields=(status_field,))
            from dataclasses import replace
            fs = replace(fs, classify=status_classes, link=link)
            app.set_findings_list(status="registry_status", status_labels=labels)
        else:
            fs = findings_spec("findings")
        app.add_layer(fs, f)
        if options.mode == "served":  # the browser reads the statuses afresh on every load
            url = link[0]
            app.config["registry"] = {
                "url": f"{options.api_base}/registry/hazards", "layer": "findings",
                "field": "registry_status", "limit": 500, "classify": status_classes.to_js(None),
                "popupField": status_field.to_js(), "labels": labels,
                "link": {"url": options.api_base + url, "label": link[1]}}
    rows = progress_rows(registry, coverage_overall)
    if rows:
        app.add_panel("progress", text("工作进度与规划目标", "Progress against plan targets"), rows,
                      columns=[text("指标", "measure"), text("现状", "current"), text("目标", "target")])
    return m
