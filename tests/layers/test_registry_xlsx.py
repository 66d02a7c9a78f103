"""The two lists as an Excel ledger: written, read back with openpyxl, edited and imported all
or nothing (GeoPackage and PostGIS registries)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from openpyxl import load_workbook
from shapely.geometry import Point

from layers.registry import Actor, Registry, rectification_stats
from layers.registry_xlsx import (
    HAZARD_COLUMNS,
    HAZARD_SHEET,
    MEASURE_COLUMNS,
    MEASURE_SHEET,
    SUMMARY_SHEET,
    WorkbookError,
    apply_workbook,
    read_workbook,
    write_workbook,
)
from layers.store import GeoPackageStore

ADMIN = Actor("admin-user", "admin")
FIRE = Actor("fire-user", "fire")


def _finding(i: int, kind: str = "occupancy") -> dict[str, Any]:
    return {"finding_id": f"{kind}:P{i}:B{i}", "kind": kind, "severity": "critical",
            "layer": "buildings", "feature_id": f"B{i}", "other_layer": "pipelines",
            "other_id": f"P{i}", "rule_id": "pipelines.occupancy",
            "rule_source": "GB 50253-2014 §4.1.6", "station": f"K0+{10 * i:03d}.0",
            "message_zh": f"建筑 B{i} 占压管道 P{i}", "message_en": "occupies",
            "lon": 117.25 + i / 1000, "lat": 34.8}


def _gpkg(tmp_path: Path) -> Registry:
    path = tmp_path / "s.gpkg"
    GeoPackageStore(path).write({"hydrants": gpd.GeoDataFrame(
        {"id": ["h"]}, geometry=[Point(117, 34)], crs=4490)})
    return Registry(path)


@pytest.fixture(params=["gpkg", pytest.param("postgis", marks=pytest.mark.server)])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "gpkg":
        r: Any = _gpkg(tmp_path)
        _fill(r)
        yield r
        return
    from postgis_support import postgis_url, scratch_schema

    from layers.postgis import PostGISStore
    from layers.registry_pg import PgRegistry

    with scratch_schema(postgis_url()) as url:
        store = PostGISStore(url)
        store.init()
        r = PgRegistry(store)
        _fill(r)
        yield r


def _fill(r: Any) -> None:
    for i in (1, 2, 3):
        r.register(_finding(i), analysis="pipeline_findings", owner_role="planner",
                   actor=ADMIN, fields={"department": "燃气办"} if i == 1 else None)
    r.register(_finding(4, "setback"), analysis="pipeline_findings", owner_role="fire",
               actor=ADMIN)
    r.put_measure("M-1", {"title": "迁改管道", "hazard_ids": ["occupancy:P1:B1"],
                          "department": "燃气办"}, owner_role="planner", actor=ADMIN)


def _export(r: Any, roles: list[str] | None = None) -> bytes:
    rows, _ = r.hazards(roles=roles, limit=1000)
    stats = rectification_stats([(h["kind"], h["department"] or "", h["first_detected"][:4],
                                  h["status"], h["detection"]) for h in rows],
                                today=__import__("datetime").date(2026, 12, 7))
    buf = io.BytesIO()
    write_workbook(buf, hazards=rows, measures=r.measures(roles=roles), stats=stats,
                   measurements={"occupancy:P1:B1": {"distance_m": 0.0, "required_m": 5.0,
                                                     "shortfall_m": 5.0}},
                   exported_at="2026-12-07T10:00:00+08:00")
    return buf.getvalue()


def _state(r: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    rows, _ = r.hazards(limit=1000)
    return rows, r.measures(), r.audit(limit=1)[1]


def test_export_reads_back_with_the_registry_rows_and_columns(reg: Any) -> None:
    wb = load_workbook(io.BytesIO(_export(reg)))
    assert wb.sheetnames == [HAZARD_SHEET, MEASURE_SHEET, SUMMARY_SHEET]
    ws = wb[HAZARD_SHEET]
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0] == [c for c, _ in HAZARD_COLUMNS]
    col = {c: i for i, c in enumerate(rows[0])}
    hazards, _ = reg.hazards(limit=1000)
    assert [r[col["隐患编号"]] for r in rows[1:]] == [h["hazard_id"] for h in hazards]
    assert [r[col["序号"]] for r in rows[1:]] == [1, 2, 3, 4]
    first = rows[1]
    assert first[col["隐患编号"]] == "occupancy:P1:B1"
    assert first[col["隐患类别"]] == "管道占压 (occupancy)"
    assert first[col["严重程度"]] == "重大"
    assert first[col["经度 lon (EPSG:4326)"]] == pytest.approx(117.251, abs=1e-6)
    assert first[col["纬度 lat (EPSG:4326)"]] == pytest.approx(34.8, abs=1e-6)
    assert first[col["桩号"]] == "K0+010.0"
    assert first[col["规则/条款"]] == "pipelines.occupancy GB 50253-2014 §4.1.6"
    assert (first[col["距离 (m)"]], first[col["要求 (m)"]], first[col["差值 (m)"]]) == (
        0.0, 5.0, 5.0)
    assert rows[2][col["距离 (m)"]] is None  # no measurement given for that one
    assert first[col["责任单位"]] == "燃气办"
    assert first[col["整改状态"]] == "待整改"
    assert first[col["版本"]] == 1
    assert ws.freeze_panes == "C2"
    assert ws.column_dimensions["B"].width == 34
    lists = [dv.formula1 for dv in ws.data_validations.dataValidation]
    assert lists == ['"待整改,整改中,已整改,已验收,已销号"']
    wm = wb[MEASURE_SHEET]
    mrows = [list(r) for r in wm.iter_rows(values_only=True)]
    assert mrows[0] == [c for c, _ in MEASURE_COLUMNS]
    assert mrows[1][:5] == [1, "M-1", "迁改管道", "occupancy:P1:B1", "燃气办"]
    summary = [list(r) for r in wb[SUMMARY_SHEET].iter_rows(values_only=True)]
    kind_rows = {r[0]: r for r in summary if r and r[0] in ("管道占压 (occupancy)",
                                                             "间距不足 (setback)")}
    assert kind_rows["管道占压 (occupancy)"][1:8] == [3, 0, 0, 3, 0, 0.0, 1.0]
    assert kind_rows["间距不足 (setback)"][1:8] == [1, 0, 0, 1, 0, 0.0, 1.0]


def _edit(data: bytes, changes: dict[tuple[str, int], dict[str, Any]]) -> bytes:
    """``changes[(sheet, row)] = {column header: value}`` applied to an exported workbook."""
    wb = load_workbook(io.BytesIO(data))
    for (sheet, row), cells in changes.items():
        ws = wb[sheet]
        header = [c.value for c in ws[1]]
        for name, value in cells.items():
            ws.cell(row=row, column=header.index(name) + 1, value=value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_bad_status_and_unknown_id_are_both_named_and_nothing_changes(reg: Any) -> None:
    before = _state(reg)
    data = _edit(_export(reg), {
        (HAZARD_SHEET, 2): {"整改状态": "完成", "整改措施": "拆除"},
        (HAZARD_SHEET, 3): {"隐患编号": "occupancy:NOPE", "整改措施": "迁改"},
        (HAZARD_SHEET, 4): {"整改措施": "加装警示", "整改状态": "整改中"},  # fine alone
    })
    with pytest.raises(WorkbookError) as err:
        apply_workbook(reg.batch, read_workbook(data, name="ledger.xlsx"), actor=ADMIN)
    assert [str(p) for p in err.value.problems] == [
        "sheet '隐患清单', row 2 (occupancy:P1:B1), column 整改状态: received '完成'; expected "
        "one of 待整改, 整改中, 已整改, 已验收, 已销号",
        "sheet '隐患清单', row 3, column 隐患编号: received 'occupancy:NOPE'; expected the id "
        "of a hazard in the registry",
    ]
    assert str(err.value).startswith("workbook ledger.xlsx: 2 problem(s), nothing imported:")
    d = err.value.problems[0].as_dict()
    assert (d["sheet"], d["row"], d["column"], d["received"]) == (
        "隐患清单", 2, "整改状态", "完成")
    assert _state(reg) == before


def test_a_good_edit_is_applied_in_one_transaction_and_audited(reg: Any) -> None:
    import datetime as dt

    data = _edit(_export(reg), {
        (HAZARD_SHEET, 2): {"整改状态": "整改中", "整改措施": "拆除违建", "责任人": "王工",
                            "整改时限": dt.datetime(2022, 12, 31)},
        (HAZARD_SHEET, 3): {"责任单位": "住建局"},
        (MEASURE_SHEET, 2): {"状态": "实施中"},
        (MEASURE_SHEET, 3): {"措施编号": "M-2", "措施名称": "巡线加密",
                             "关联隐患": "occupancy:P2:B2、occupancy:P3:B3",
                             "完成时限": "2023-06-30"},
    })
    report = apply_workbook(reg.batch, read_workbook(data), actor=ADMIN)
    assert (report.hazards_updated, report.transitions, report.measures_created,
            report.measures_updated, report.unchanged) == (2, 1, 1, 1, 2)
    h1 = reg.hazard("occupancy:P1:B1")
    assert (h1["status"], h1["measures"], h1["responsible"], h1["deadline"], h1["version"]) == (
        "rectifying", "拆除违建", "王工", "2022-12-31", 3)
    assert reg.hazard("occupancy:P2:B2")["department"] == "住建局"
    assert reg.measure("M-1")["status"] == "in_progress"
    m2 = reg.measure("M-2")
    assert (m2["title"], m2["hazard_ids"], m2["deadline"], m2["owner_role"]) == (
        "巡线加密", ["occupancy:P2:B2", "occupancy:P3:B3"], "2023-06-30", "planner")
    entries, _ = reg.audit(limit=100)
    tail = [(e["action"], e["record_id"], e["who"]) for e in entries[-5:]]
    assert tail == [("import:update", "occupancy:P1:B1", "admin-user"),
                    ("status:identified->rectifying", "occupancy:P1:B1", "admin-user"),
                    ("import:update", "occupancy:P2:B2", "admin-user"),
                    ("update", "M-1", "admin-user"), ("create", "M-2", "admin-user")]
    # the same workbook again: every row now matches the store, nothing is applied twice
    before = _state(reg)
    again = apply_workbook(reg.batch, read_workbook(data), actor=ADMIN)
    assert (again.hazards_updated, again.transitions, again.measures_created,
            again.measures_updated, again.unchanged) == (0, 0, 0, 0, 6)
    assert _state(reg) == before


def test_stale_row_and_illegal_transition_are_refused_named(reg: Any) -> None:
    data = _export(reg)
    reg.update("occupancy:P2:B2", {"notes": "site visit"}, actor=ADMIN, expected_version=1)
    before = _state(reg)
    edited = _edit(data, {(HAZARD_SHEET, 2): {"整改状态": "已销号"},
                          (HAZARD_SHEET, 3): {"整改措施": "迁改"}})
    with pytest.raises(WorkbookError) as err:
        apply_workbook(reg.batch, read_workbook(edited), actor=ADMIN)
    msgs = [str(p) for p in err.value.problems]
    assert msgs[0] == ("sheet '隐患清单', row 2 (occupancy:P1:B1), column 整改状态: received "
                       "'已销号'; expected 待整改 (unchanged) or 整改中 (allowed next from 待整改)")
    assert msgs[1].startswith("sheet '隐患清单', row 3 (occupancy:P2:B2), column 版本: "
                              "received 1; expected 2, the version in the store")
    assert len(msgs) == 2
    assert _state(reg) == before


def test_roles_limit_what_a_department_may_see_and_change(reg: Any) -> None:
    fire_book = _export(reg, roles=["fire"])
    ids = [r[1] for r in load_workbook(io.BytesIO(fire_book))[HAZARD_SHEET].iter_rows(
        min_row=2, values_only=True)]
    assert ids == ["setback:P4:B4"]
    planner_book = _edit(_export(reg), {(HAZARD_SHEET, 2): {"整改措施": "x"}})
    with pytest.raises(WorkbookError) as err:  # fire may see only its own: P1 is "unknown"
        apply_workbook(reg.batch, read_workbook(planner_book), actor=FIRE, roles=["fire"])
    assert [str(p) for p in err.value.problems] == [
        f"sheet '隐患清单', row {i + 1}, column 隐患编号: received 'occupancy:P{i}:B{i}'; "
        "expected the id of a hazard in the registry" for i in (1, 2, 3)] + [
        "sheet '整改措施清单', row 2 (M-1), column 关联隐患: received 'occupancy:P1:B1'; "
        "expected ids of hazards in the registry",
        "sheet '整改措施清单', row 2, column 措施编号: received 'M-1'; expected the id of a "
        "measure in the registry, or a new id with an empty 版本"]
    with pytest.raises(WorkbookError) as err:  # planner sees everything, changes its own
        apply_workbook(reg.batch, read_workbook(_edit(_export(reg), {
            (HAZARD_SHEET, 5): {"整改措施": "x"}})), actor=Actor("p", "planner"),
            may_change=lambda owner: owner == "planner")
    assert [str(p) for p in err.value.problems] == [
        "sheet '隐患清单', row 5 (setback:P4:B4): the hazard belongs to role 'fire'; this "
        "role may not change it"]


def test_not_a_workbook_and_a_wrong_header_are_named(tmp_path: Path) -> None:
    edits = read_workbook(b"MZ\x90\x00 not a zip", name="evil.xlsx")
    assert [str(p) for p in edits.problems] == [
        "sheet '(workbook)': evil.xlsx is not an .xlsx workbook (BadZipFile); export one with "
        "`riskmap registry export --format xlsx`"]
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = HAZARD_SHEET
    wb.active.append(["编号", "状态"])
    wb.save(tmp_path / "w.xlsx")
    assert [str(p) for p in read_workbook(tmp_path / "w.xlsx").problems] == [
        "sheet '隐患清单': the header row lacks column(s) 隐患编号, 版本 (found: 编号, 状态); "
        "keep the exported header"]


def test_closing_date_is_the_districts(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    rec = {**_finding(9), "hazard_id": "occupancy:P9:B9", "status": "closed",
           "detection": "detected", "owner_role": "planner", "version": 5,
           "closed_at": "2026-12-07T20:00:00Z"}  # 04:00 next day in Shanghai
    out = tmp_path / "c.xlsx"
    write_workbook(out, hazards=[rec], measures=[], stats={}, tz=ZoneInfo("Asia/Shanghai"))
    ws = load_workbook(out)[HAZARD_SHEET]
    header = [c.value for c in ws[1]]
    row = [c.value for c in ws[2]]
    assert (row[header.index("销号日期")], row[header.index("整改状态")]) == (
        "2026-12-08", "已销号")


def test_text_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    reg = _gpkg(tmp_path)
    evil = '=HYPERLINK("http://example.invalid/x","点此")'
    reg.register(_finding(1), analysis="pipeline_findings", owner_role="planner",
                 actor=ADMIN, fields={"department": evil, "measures": "=1+1"})
    data = _export(reg)
    ws = load_workbook(io.BytesIO(data))[HAZARD_SHEET]
    header = [c.value for c in ws[1]]
    dep, mea = ws.cell(2, header.index("责任单位") + 1), ws.cell(2, header.index("整改措施") + 1)
    assert (dep.value, dep.data_type, mea.value, mea.data_type) == (evil, "s", "=1+1", "s")
    assert b"<f>" not in __import__("zipfile").ZipFile(io.BytesIO(data)).read(
        "xl/worksheets/sheet1.xml")
    report = apply_workbook(reg.batch, read_workbook(data), actor=ADMIN)  # reads back as is
    assert report.unchanged == 1 and reg.hazard("occupancy:P1:B1")["department"] == evil


def test_control_characters_are_shown_not_fatal(tmp_path: Path) -> None:
    """A worksheet cannot hold control characters: text typed with one (through the API) is
    exported with U+FFFD in its place instead of failing the export (a 500 before)."""
    reg = _gpkg(tmp_path)
    reg.register(_finding(1), analysis="pipeline_findings", owner_role="planner",
                 actor=ADMIN, fields={"department": "燃气\x00办", "measures": "清理\x1b占压"})
    wb = load_workbook(io.BytesIO(_export(reg)))
    ws = wb[HAZARD_SHEET]
    header = [c.value for c in ws[1]]
    assert (ws.cell(2, header.index("责任单位") + 1).value,
            ws.cell(2, header.index("整改措施") + 1).value) == ("燃气\ufffd办", "清理\ufffd占压")
    summary = [c for row in wb.worksheets[-1].iter_rows(values_only=True) for c in row if c]
    assert "燃气\ufffd办" in summary
