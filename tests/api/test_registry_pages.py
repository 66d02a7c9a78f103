"""The registry workspace over HTTP: Excel out and in, the list and hazard pages, the
dashboard (same numbers as /registry/stats) and its PNG."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from layers.registry import Actor, Registry
from layers.registry_xlsx import HAZARD_SHEET
from tests.api.conftest import auth, make_client

ADMIN = Actor("t", "admin")


def _finding(fid: str, kind: str, layer: str, **extra: Any) -> dict[str, Any]:
    return {"finding_id": fid, "kind": kind, "severity": "high", "layer": layer,
            "feature_id": fid.split(":")[-1], "rule_id": "r", "rule_source": "GB",
            "message_zh": f"隐患 {fid}", "message_en": fid, "lon": 117.25, "lat": 34.8,
            **extra}


@pytest.fixture()
def pc(store_copy: Any) -> Iterator[tuple[Any, Registry]]:
    reg = Registry(store_copy.path)
    for i in range(3):
        reg.register(_finding(f"lane_too_narrow:FL-{i}", "lane_too_narrow", "fire_lanes"),
                     analysis="fire_findings", owner_role="fire", actor=ADMIN,
                     fields={"department": "消防大队",
                             "deadline": ("2024-06-30", "2025-06-30", "2099-06-30")[i]})
    reg.register(_finding("occupancy:P-01:B-00", "occupancy", "buildings"),
                 analysis="pipeline_findings", owner_role="planner", actor=ADMIN,
                 fields={"department": "燃气办"})
    with make_client(store_copy.path) as c:
        yield c, reg


def test_export_is_role_filtered(pc: tuple[Any, Registry]) -> None:
    c, _ = pc
    r = c.get("/registry/export.xlsx", headers=auth("fire"))
    assert r.status_code == 200
    assert r.headers["content-type"] == ("application/vnd.openxmlformats-officedocument."
                                         "spreadsheetml.sheet")
    assert re.fullmatch(r'attachment; filename="riskmap-registry-\d{8}\.xlsx"',
                        r.headers["content-disposition"])
    ws = load_workbook(io.BytesIO(r.content))[HAZARD_SHEET]
    assert [row[1] for row in ws.iter_rows(min_row=2, values_only=True)] == [
        f"lane_too_narrow:FL-{i}" for i in range(3)]
    planner = load_workbook(io.BytesIO(c.get("/registry/export.xlsx",
                                             headers=auth("planner")).content))[HAZARD_SHEET]
    assert planner.max_row == 5  # header + all four
    assert c.get("/registry/export.xlsx").status_code == 401
    assert c.get("/registry/export.xlsx", headers=auth("public")).status_code == 403


def _edited(c: Any, role: str, changes: dict[int, dict[str, Any]]) -> bytes:
    wb = load_workbook(io.BytesIO(c.get("/registry/export.xlsx", headers=auth(role)).content))
    ws = wb[HAZARD_SHEET]
    header = [x.value for x in ws[1]]
    for row, cells in changes.items():
        for k, v in cells.items():
            ws.cell(row=row, column=header.index(k) + 1, value=v)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_import_all_or_nothing(pc: tuple[Any, Registry]) -> None:
    c, reg = pc
    bad = _edited(c, "fire", {2: {"整改状态": "done"}, 3: {"隐患编号": "lane_too_narrow:X"},
                              4: {"整改措施": "拓宽"}})
    audit_before = reg.audit(limit=1)[1]
    r = c.post("/registry/import.xlsx", headers=auth("fire"), content=bad)
    assert r.status_code == 422
    assert [p["message"] for p in r.json()["problems"]] == [
        "sheet '隐患清单', row 2 (lane_too_narrow:FL-0), column 整改状态: received 'done'; "
        "expected one of 待整改, 整改中, 已整改, 已验收, 已销号",
        "sheet '隐患清单', row 3, column 隐患编号: received 'lane_too_narrow:X'; expected the "
        "id of a hazard in the registry"]
    assert reg.audit(limit=1)[1] == audit_before
    assert reg.hazard("lane_too_narrow:FL-2")["measures"] is None
    good = _edited(c, "fire", {2: {"整改状态": "整改中", "整改措施": "拓宽", "责任人": "李"}})
    r = c.post("/registry/import.xlsx", headers=auth("fire"), content=good)
    assert r.status_code == 200, r.text
    assert r.json()["summary"] == ("1 hazard(s) updated, 1 status change(s), 0 measure(s) "
                                   "created, 0 updated, 2 row(s) unchanged")
    h = reg.hazard("lane_too_narrow:FL-0")
    assert (h["status"], h["measures"], h["responsible"]) == ("rectifying", "拓宽", "李")
    assert reg.audit(record_id="lane_too_narrow:FL-0")[0][-1]["who"] == "fire-user"
    assert c.post("/registry/import.xlsx", headers=auth("public"),
                  content=good).status_code == 403
    assert c.post("/registry/import.xlsx", content=good).status_code == 401


def _numbers(html: str, cls: str) -> dict[str, str]:
    table = html.split(f"<table class='{cls}'>")[1].split("</table>")[0]
    return dict(re.findall(r"<tr data-key='([^']*)'><td>[^<]*</td>(?:<td>[^<]*</td>){4}"
                           r"<td class='rate'>([^<]*)</td>", table))


def test_dashboard_has_the_stats_numbers_and_a_png(pc: tuple[Any, Registry]) -> None:
    c, reg = pc
    reg.transition("lane_too_narrow:FL-0", "rectifying", actor=ADMIN)
    reg.transition("lane_too_narrow:FL-0", "rectified", actor=ADMIN)
    stats = c.get("/registry/stats").json()
    html = c.get("/registry/dashboard", headers=auth("fire")).text
    assert _numbers(html, "by-kind") == {
        k: f"{100 * v['rate']:.1f} %" for k, v in stats["by_kind"].items()}
    assert _numbers(html, "by-kind") == {"lane_too_narrow": "33.3 %", "occupancy": "0.0 %"}
    assert _numbers(html, "by-department") == {"消防大队": "33.3 %", "燃气办": "0.0 %"}
    assert f"<p id='overall' data-rate='{stats['rate']}'>" in html
    assert html.count("<svg") == 5 and "<script" not in html.split("<main>")[1].split(
        "</main>")[0]
    # overdue: FL-1 (2025-06-30) is open; FL-0 (2024) is rectified, FL-2 due in 2099
    overdue = html.split("<table id='overdue'>")[1].split("</table>")[0]
    assert re.findall(r"<td><a href='[^']*'>([^<]*)</a>", overdue) == ["lane_too_narrow:FL-1"]
    assert "<table id='protection'>" not in html  # pipeline data: not for the fire brigade
    planner = c.get("/registry/dashboard", headers=auth("planner")).text
    prot = planner.split("<table id='protection'>")[1].split("</table>")[0]
    # the small store: an HCA on P-01 with no warning sign on record, no patrol path, no
    # Lu-Ning line, no inspection dates on P-01/P-02
    rows = re.findall(r"<tr data-rule='([^']*)'><td>[^<]*</td><td>(\d+)</td>"
                      r"<td class='rate'>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td>", prot)
    assert rows == [
        ("hca_signs_2022", "2022", "0.0 %", "100.0 %", "否 no", "0.00 / 0.27 km; 缺口 gaps 1"),
        ("patrol_luning_2020", "2020", "–", "100.0 %", "–",
         "0.00 / 0.00 km; 无此类管道 no such pipeline"),
        ("patrol_all_2022", "2022", "0.0 %", "100.0 %", "否 no", "0.00 / 0.27 km; P-01"),
        ("inspection_rate_rising", "2022", "0.0 %", "–", "–",
         "逾期 overdue 0; 无记录 no record 2; 按长度 by length 0.0 %")]
    png = c.get("/registry/dashboard.png", headers=auth("fire"))
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.get("/registry/dashboard.png").status_code == 401


def test_list_page_filters_sorts_pages(pc: tuple[Any, Registry]) -> None:
    c, _ = pc

    def ids(url: str, role: str = "fire") -> list[str]:
        r = c.get(url, headers={**auth(role), "Accept": "text/html"})
        assert r.status_code == 200, r.text
        return re.findall(r"<tr class='[^']*' data-id='([^']*)'>", r.text)

    assert ids("/registry") == [f"lane_too_narrow:FL-{i}" for i in range(3)]
    assert ids("/registry", "planner") == [
        *(f"lane_too_narrow:FL-{i}" for i in range(3)), "occupancy:P-01:B-00"]
    assert ids("/registry?sort=deadline&order=desc") == [
        f"lane_too_narrow:FL-{i}" for i in (2, 1, 0)]
    assert ids("/registry?overdue=1") == ["lane_too_narrow:FL-0", "lane_too_narrow:FL-1"]
    assert ids("/registry?department=燃气办", "admin") == ["occupancy:P-01:B-00"]
    assert ids("/registry?kind=occupancy") == []  # fire cannot see it
    assert ids("/registry?per=2&page=2") == ["lane_too_narrow:FL-2"]
    assert ids("/registry?status=closed") == []
    assert c.get("/registry?sort=evil", headers=auth("fire")).status_code == 400


def test_pages_need_a_staff_role(pc: tuple[Any, Registry]) -> None:
    c, _ = pc
    r = c.get("/registry", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/registry"
    r = c.get("/registry/hazards/lane_too_narrow:FL-0", headers={"Accept": "text/html"},
              follow_redirects=False)
    assert r.headers["location"] == "/signin?next=/registry/hazards/lane_too_narrow%3AFL-0"
    assert c.get("/registry/dashboard", headers=auth("public")).status_code == 403
    page = c.get("/registry/hazards/lane_too_narrow:FL-0",
                 headers={**auth("fire"), "Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "id='hazard-data'" in page.text and "GB" in page.text
    js = c.get("/registry/hazards/lane_too_narrow:FL-0", headers=auth("fire"))
    assert js.headers["content-type"] == "application/json" and js.headers["ETag"] == '"1"'
    assert c.get("/registry/hazards/occupancy:P-01:B-00",
                 headers={**auth("fire"), "Accept": "text/html"}).status_code == 404


def test_cli_export_and_import(store_copy: Any, tmp_path: Any, capsys: Any) -> None:
    from api.cli import main

    reg = Registry(store_copy.path)
    reg.register(_finding("occupancy:P-01:B-00", "occupancy", "buildings"),
                 analysis="pipeline_findings", owner_role="planner", actor=ADMIN)
    out = tmp_path / "ledger.xlsx"
    assert main(["registry", "export", "--store", str(store_copy.path), "--format", "xlsx",
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{out}: 1 hazard(s) in 隐患清单, the measures in 整改措施清单, rates in 汇总")
    wb = load_workbook(out)
    ws = wb[HAZARD_SHEET]
    header = [x.value for x in ws[1]]
    ws.cell(row=2, column=header.index("整改状态") + 1, value="已销号")
    wb.save(out)
    assert main(["registry", "import", "--store", str(store_copy.path), str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[:2] == [
        "riskmap: error: workbook ledger.xlsx: 1 problem(s), nothing imported:",
        "  - sheet '隐患清单', row 2 (occupancy:P-01:B-00), column 整改状态: received '已销号'; "
        "expected 待整改 (unchanged) or 整改中 (allowed next from 待整改)"]
    ws.cell(row=2, column=header.index("整改状态") + 1, value="整改中")
    wb.save(out)
    assert main(["registry", "import", "--store", str(store_copy.path), str(out), "--who",
                 "li"]) == 0
    assert reg.hazard("occupancy:P-01:B-00")["status"] == "rectifying"
    assert reg.audit()[0][-1]["who"] == "li"


@pytest.mark.server
def test_postgis_import_and_attachments(tmp_path: Any) -> None:
    from api.app import create_app
    from api.settings import Settings
    from layers.postgis import PostGISStore
    from layers.registry_pg import PgRegistry
    from tests.api.conftest import API_KEYS
    from tests.layers.postgis_support import postgis_url, scratch_schema

    with scratch_schema(postgis_url()) as url:
        store = PostGISStore(url)
        store.init()
        reg = PgRegistry(store)
        for i in range(2):
            reg.register(_finding(f"lane_too_narrow:FL-{i}", "lane_too_narrow", "fire_lanes"),
                         analysis="fire_findings", owner_role="fire", actor=ADMIN)
        with TestClient(create_app(Settings(store=url, api_keys=API_KEYS), store=store)) as c:
            bad = _edited(c, "fire", {2: {"整改状态": "done"},
                                      3: {"隐患编号": "lane_too_narrow:X"}})
            before = (reg.hazards(limit=10)[0], reg.audit(limit=1)[1])
            r = c.post("/registry/import.xlsx", headers=auth("fire"), content=bad)
            assert r.status_code == 422
            assert [(p["row"], p["column"], p["received"]) for p in r.json()["problems"]] == [
                (2, "整改状态", "done"), (3, "隐患编号", "lane_too_narrow:X")]
            assert (reg.hazards(limit=10)[0], reg.audit(limit=1)[1]) == before
            png = b"\x89PNG\r\n\x1a\n" + bytes(40)
            r = c.post("/registry/hazards/lane_too_narrow:FL-0/attachments",
                       headers=auth("fire"), files={"file": ("a.png", png, "image/png")})
            assert r.status_code == 400
            assert r.json()["description"] == ("this store keeps no files; set "
                                               "RISKMAP_ATTACHMENTS_DIR to a folder for hazard "
                                               "attachments")
        settings = Settings(store=url, api_keys=API_KEYS, attachments_dir=tmp_path / "att")
        with TestClient(create_app(settings, store=store)) as c:
            r = c.post("/registry/hazards/lane_too_narrow:FL-0/attachments",
                       headers=auth("fire"), files={"file": ("a.png", png, "image/png")})
            assert r.status_code == 201, r.text
            (att,) = r.json()["attachments"]
            assert (tmp_path / "att" / att["id"]).read_bytes() == png
            assert c.get(att["href"], headers=auth("fire")).content == png
