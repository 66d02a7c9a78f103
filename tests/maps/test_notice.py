"""maps/notice.py: the printed hazmat notice on crafted geometry (EPSG:4548, metres).

The PDF is read back with pypdf: page size in points, the text layer (title, N / 北, road
names, route hours, zone rules, scale, CRS, number); the PNG's pixel size from its header.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import LineString, box

from geo.errors import CRSError
from maps.notice import (
    NoticeInfo,
    Override,
    find_cjk_font,
    map_scale,
    render_notice,
    scale_bar_length,
)

pypdf = pytest.importorskip("pypdf")

CRS = "EPSG:4548"
X0, Y0 = 520000.0, 3850000.0


def _roads() -> gpd.GeoDataFrame:
    rows = [
        {"id": "R1", "name": "光明大道", "road_class": "arterial", "hazmat": "yes",
         "geometry": LineString([(X0, Y0 + 1000), (X0 + 4000, Y0 + 1000)])},
        {"id": "R2", "name": "人民路", "road_class": "collector", "hazmat": "yes",
         "geometry": LineString([(X0 + 2000, Y0), (X0 + 2000, Y0 + 3000)])},
        {"id": "R3", "name": "学府街", "road_class": "local", "hazmat": "no",
         "geometry": LineString([(X0 + 500, Y0 + 2500), (X0 + 3500, Y0 + 2500)])},
    ]
    return gpd.GeoDataFrame(rows, crs=CRS)


def _routes() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame([{"id": "HR-01", "name": "一号线", "hours": "09:00-16:00",
                              "geometry": LineString([(X0, Y0 + 1000),
                                                      (X0 + 4000, Y0 + 1000)])}], crs=CRS)


def _zones() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame([
        {"id": "Z-01", "name": "水源保护区", "rule": "forbidden", "hours": "",
         "geometry": box(X0 + 2600, Y0 + 1800, X0 + 3400, Y0 + 2300)},
        {"id": "Z-S1", "name": "学校周边区域", "rule": "forbidden",
         "hours": "07:00-09:00;17:00-19:00", "geometry": box(X0 + 600, Y0 + 1800,
                                                             X0 + 900, Y0 + 2100)},
        {"id": "Z-02", "name": "中心城区", "rule": "permit", "hours": "",
         "geometry": box(X0 + 1500, Y0 + 200, X0 + 2500, Y0 + 700)},
    ], crs=CRS)


INFO = NoticeInfo(date="2026-12-07", authority="某市公安局交通警察支队",
                  check_zh="路线核查：1 条路线，无严重问题",
                  check_en="route check: 1 route(s), no critical finding")


def _pdf(**kw: object) -> tuple[Any, str]:
    args: dict[str, object] = {"roads": _roads(), "routes": _routes(), "zones": _zones(),
                               "info": INFO, **kw}
    data = render_notice(**args)  # type: ignore[arg-type]
    assert data[:5] == b"%PDF-"
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    return page, page.extract_text()


def test_map_scale_and_scale_bar() -> None:
    assert map_scale((8000.0, 9000.0), (190.0, 170.0)) == 75000
    assert map_scale((1900.0, 1000.0), (190.0, 170.0)) == 10000  # exactly 1:10 000
    assert map_scale((1901.0, 1000.0), (190.0, 170.0)) == 12500
    assert scale_bar_length(1800.0) == 1000.0
    assert scale_bar_length(2600.0) == 2000.0
    assert scale_bar_length(740.0) == 500.0
    assert scale_bar_length(99.0) == 50.0
    with pytest.raises(ValueError, match="expected > 0"):
        scale_bar_length(0.0)


def test_a4_portrait_pdf_page_and_text_layer() -> None:
    page, text = _pdf()
    w, h = float(page.mediabox.width), float(page.mediabox.height)
    assert abs(w - 595.28) <= 1 and abs(h - 841.89) <= 1
    assert "危险化学品运输车辆通行路线及限行区域公告" in text
    assert "Public notice: hazardous-chemical vehicle routes and restricted zones" in text
    # north arrow and road names in the text layer
    assert re.search(r"(^|\n)N(\n|$)", text) and "北" in text
    for name in ("光明大道", "人民路", "学府街"):
        assert name in text, name
    assert "某市公安局交通警察支队" in text and "2026-12-07" in text
    assert "未编号 / no number" in text  # no number given: never a zone's text
    assert "另行通知前 / until further notice" in text
    # the route with its hours, the zones with rule and hours (map labels and table)
    assert "HR-01" in text and "09:00-16:00" in text and "一号线" in text
    assert "Z-01" in text and "水源保护区" in text and "禁行" in text and "凭证通行" in text
    assert "07:00-09:00;17:00-19:00" in text and "全天 00:00-24:00" in text
    # metric scale bar and stated CRS; no imperial units
    assert "比例尺 Scale 1:" in text and "EPSG:4548" in text
    assert re.search(r"\b\d+(\.\d+)? (m|km)\b", text)
    assert not re.search(r"\b(ft|feet|mi|miles|yd)\b", text)
    assert "图例 Legend" in text and "路线核查：1 条路线，无严重问题" in text


def test_a3_landscape_pdf_and_number() -> None:
    info = NoticeInfo(date="2026-12-07", notice_no="枣公交通〔2026〕12号",
                      valid_until="2027-06-30")
    page, text = _pdf(info=info, paper="a3", orientation="landscape")
    w, h = float(page.mediabox.width), float(page.mediabox.height)
    assert abs(w - 1190.55) <= 1 and abs(h - 841.89) <= 1
    assert "枣公交通〔2026〕12号" in text and "2027-06-30" in text
    assert "未编号" not in text
    assert "未注明 / not stated" in text  # no authority given


def test_override_is_printed() -> None:
    ov = Override(route_id="HR-01", other_id="Z-01",
                  message_zh="通行路线 HR-01 穿越禁行区域 Z-01（水源保护区）",
                  message_en="route HR-01 crosses forbidden zone Z-01 (水源保护区)",
                  reason="市局批准 临时保供")
    info = NoticeInfo(date="2026-12-07", overrides=(ov,))
    flagged = gpd.GeoDataFrame({"feature_id": ["HR-01"]}, geometry=[
        LineString([(X0 + 2600, Y0 + 1000), (X0 + 3400, Y0 + 1000)])], crs=CRS)
    _page, text = _pdf(info=info, flagged=flagged)
    assert "注意：经批准发布的违规路段\nStretch published by override" in text
    assert "注意：通行路线 HR-01 穿越禁行区域 Z-01（水源保护区），经批准发布（理由：市局批准 临时保供）" \
        in text.replace("\n", "")
    assert "Warning: route HR-01 crosses forbidden zone Z-01" in text


def test_png_size_at_200_dpi() -> None:
    data = render_notice(roads=_roads(), routes=_routes(), zones=_zones(), info=INFO,
                         fmt="png", dpi=200)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1653, 2338)  # A4 (210 x 297 mm) at 200 dpi, whole pixels


def test_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="paper 'a5'; expected one of a4, a3"):
        render_notice(roads=_roads(), routes=_routes(), zones=_zones(), info=INFO, paper="a5")
    with pytest.raises(ValueError, match="orientation 'wide'"):
        render_notice(roads=_roads(), routes=_routes(), zones=_zones(), info=INFO,
                      orientation="wide")
    with pytest.raises(ValueError, match="format 'svg'; expected pdf or png"):
        render_notice(roads=_roads(), routes=_routes(), zones=_zones(), info=INFO, fmt="svg")
    with pytest.raises(CRSError, match="routes is in EPSG:4490"):
        render_notice(roads=_roads(), routes=_routes().to_crs(4490), zones=_zones(), info=INFO)
    with pytest.raises(FileNotFoundError, match=re.escape("notice font '/nonexistent/font.ttf'")):
        find_cjk_font("/nonexistent/font.ttf")


def test_no_route_still_prints() -> None:
    empty = _routes().iloc[:0]
    _page, text = _pdf(routes=empty)
    assert "Stretch published by override" not in text
    assert "无已公布路线 / no published route" in text
    assert "光明大道" in text
