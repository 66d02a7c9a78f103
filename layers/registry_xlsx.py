"""The registry's two lists as an Excel ledger, out and back in.

:func:`write_workbook` writes the layout such ledgers use — sheet ``隐患清单`` (one row per
hazard: 序号, 隐患编号, 类别, 名称, 位置 and 桩号, rule, measurement, 责任单位, 责任人, 整改措施,
整改时限, 整改状态, 销号日期, 版本 …), sheet ``整改措施清单`` (one row per measure) and sheet
``汇总`` (rectification rates by kind / department / year against the plan's targets, HCA
monitoring coverage) — with a frozen header, column widths and drop-down lists for the statuses.

:func:`read_workbook` + :func:`apply_workbook` read a department's edited copy back: status
(only along the workflow's allowed transitions), measures, deadline, department, responsible
person, and the measures sheet. Every problem is collected and named (sheet, row, column, value
received, what was expected) and raised once as :class:`WorkbookError`; otherwise every change
is applied in ONE registry transaction (:meth:`layers.registry.Registry.batch`), audited, all or
nothing. The ``版本`` column is the optimistic-concurrency check: a hazard or measure changed in
the store since the export is refused, named.

Coordinates are written in EPSG:4326 (lon, lat), converted from the registry's EPSG:4490.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from layers.errors import MISSING, LayerValidationError, Problem
from layers.registry import (
    MEASURE_STATUSES,
    RECTIFICATION_TARGETS,
    STATUSES,
    TRANSITIONS,
    Actor,
    RegistryTx,
)

__all__ = [
    "HAZARD_COLUMNS",
    "HAZARD_SHEET",
    "KIND_LABELS",
    "MEASURE_COLUMNS",
    "MEASURE_SHEET",
    "MEASURE_STATUS_LABELS",
    "STATUS_LABELS",
    "SUMMARY_SHEET",
    "ImportReport",
    "SheetProblem",
    "WorkbookEdits",
    "WorkbookError",
    "apply_workbook",
    "read_workbook",
    "write_workbook",
]

HAZARD_SHEET = "隐患清单"
MEASURE_SHEET = "整改措施清单"
SUMMARY_SHEET = "汇总"

STATUS_LABELS: dict[str, str] = {"identified": "待整改", "rectifying": "整改中",
                                 "rectified": "已整改", "verified": "已验收",
                                 "closed": "已销号"}
MEASURE_STATUS_LABELS: dict[str, str] = {"planned": "计划", "in_progress": "实施中",
                                         "in_effect": "已生效", "withdrawn": "已撤销"}
KIND_LABELS: dict[str, str] = {
    "occupancy": "管道占压", "setback": "间距不足", "hca": "高后果区",
    "building_beyond_engine_reach": "消防车5分钟不可达", "lane_too_narrow": "消防车道宽度不足",
    "dead_end_too_long": "尽头式消防车道过长", "hydrant_gap": "消火栓覆盖不足",
}
SEVERITY_LABELS: dict[str, str] = {"critical": "重大", "high": "较大", "medium": "一般",
                                   "low": "低", "info": "提示"}

# (header, width); the editable columns are read back by the importer.
HAZARD_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6), ("隐患编号", 34), ("隐患类别", 16), ("隐患名称", 48), ("严重程度", 9),
    ("经度 lon (EPSG:4326)", 14), ("纬度 lat (EPSG:4326)", 14), ("桩号", 12),
    ("规则/条款", 36), ("距离 (m)", 10), ("要求 (m)", 10), ("差值 (m)", 10),
    ("责任单位", 16), ("责任人", 10), ("整改措施", 36), ("整改时限", 12), ("整改状态", 10),
    ("销号日期", 12), ("检出状态", 10), ("负责角色", 9), ("版本", 6),
)  # fmt: skip
MEASURE_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6), ("措施编号", 16), ("措施名称", 30), ("关联隐患", 40), ("责任单位", 16),
    ("类别", 12), ("状态", 10), ("完成时限", 12), ("说明", 40), ("负责角色", 9), ("版本", 6),
)  # fmt: skip
_HAZARD_EDITABLE = {"责任单位": "department", "责任人": "responsible", "整改措施": "measures",
                    "整改时限": "deadline"}
_MEASURE_EDITABLE = {"措施名称": "title", "关联隐患": "hazard_ids", "责任单位": "department",
                     "类别": "kind", "状态": "status", "完成时限": "deadline",
                     "说明": "description"}
_IDS_SPLIT = re.compile(r"[,;，；、\s]+")
_MAX_ROWS = 200_000


# --- problems -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SheetProblem(Problem):
    """One problem of an edited workbook: ``layer`` is the sheet, ``field`` the column."""

    row: int | None = None

    def __str__(self) -> str:
        where = f"sheet {self.layer!r}"
        if self.row is not None:
            where += f", row {self.row}"
        if self.feature is not None:
            where += f" ({self.feature})"
        if self.field is None:
            return f"{where}: {self.note or self.expected}"
        received = "empty" if self.received is MISSING else repr(self.received)
        text = f"{where}, column {self.field}: received {received}; expected {self.expected}"
        return text + (f" ({self.note})" if self.note else "")

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "sheet": self.layer, "row": self.row,
                "column": self.field, "message": str(self)}


class WorkbookError(LayerValidationError):
    """An edited workbook that cannot be applied; ``problems`` names each one. Nothing was
    changed. (A LayerValidationError, so the API answers 422 with the list.)"""

    def __init__(self, name: str, problems: list[SheetProblem]) -> None:
        super().__init__(name, list(problems))
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n  … and {more} more" if more > 0 else ""
        self.args = (f"workbook {name}: {len(self.problems)} problem(s), nothing imported:\n"
                     f"{shown}{tail}",)


# --- writing --------------------------------------------------------------------------------
def _to_4326(recs: Sequence[Mapping[str, Any]]) -> list[tuple[float | None, float | None]]:
    """The records' lon/lat (EPSG:4490) in EPSG:4326, rounded to 7 decimals."""
    import numpy as np
    from pyproj import Transformer

    lon = np.array([np.nan if r.get("lon") is None else float(r["lon"]) for r in recs])
    lat = np.array([np.nan if r.get("lat") is None else float(r["lat"]) for r in recs])
    if not len(recs):
        return []
    x, y = Transformer.from_crs(4490, 4326, always_xy=True).transform(lon, lat)
    return [(None if not np.isfinite(a) else round(float(a), 7),
             None if not np.isfinite(b) else round(float(b), 7))
            for a, b in zip(np.atleast_1d(x), np.atleast_1d(y), strict=True)]


def _date(text: object, tz: dt.tzinfo | None = None) -> str | None:
    """The date of a registry time (ISO, UTC ``…Z``) in ``tz`` (the district's zone)."""
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)[:10]
    if tz is not None and at.tzinfo is not None:
        at = at.astimezone(tz)
    return at.date().isoformat()


def _num(v: object) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if f != f else round(f, 2)


def write_workbook(out: str | os.PathLike[str] | IO[bytes], *,
                   hazards: Sequence[Mapping[str, Any]],
                   measures: Sequence[Mapping[str, Any]],
                   stats: Mapping[str, Any],
                   monitoring: Mapping[str, Any] | None = None,
                   measurements: Mapping[str, Mapping[str, Any]] | None = None,
                   exported_at: str = "", title: str = "riskmap",
                   tz: dt.tzinfo | None = None) -> None:
    """Write the two lists and the summary to ``out`` (a path or a binary stream).

    ``hazards`` / ``measures`` are registry records (already filtered to what the reader may
    see); ``stats`` is ``rectification_stats`` of the same registry, ``monitoring`` its HCA
    coverage; ``measurements`` maps hazard ids to their finding's ``distance_m``,
    ``required_m``, ``shortfall_m`` (blank where absent); ``exported_at`` is the district's
    time of the export; ``tz`` the district's zone (销号日期 is the closing date there).
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    head_font = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDE6F0")

    def sheet(ws: Any, columns: Sequence[tuple[str, int]], rows: Iterable[Sequence[Any]]
              ) -> int:
        ws.append([c for c, _ in columns])
        for i, (_, width) in enumerate(columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = width
            cell = ws.cell(row=1, column=i)
            cell.font, cell.fill = head_font, head_fill
            cell.alignment = Alignment(wrap_text=True, vertical="center")
        n = 0
        for n, r in enumerate(rows, start=1):
            # control characters cannot be stored in a worksheet: shown as U+FFFD
            values = [_printable(v) for v in r]
            ws.append(values)
            for j, v in enumerate(values, start=1):
                if isinstance(v, str) and v.startswith("="):
                    # text, never a formula (values typed by users)
                    ws.cell(row=n + 1, column=j).data_type = "s"
        ws.freeze_panes = "C2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(n + 1, 2)}"
        return n

    def status_list(ws: Any, columns: Sequence[tuple[str, int]], header: str,
                    labels: Iterable[str], n: int) -> None:
        col = get_column_letter([c for c, _ in columns].index(header) + 1)
        dv = DataValidation(type="list", formula1='"' + ",".join(labels) + '"',
                            allow_blank=False, showErrorMessage=True,
                            errorTitle=header, error="请从下拉列表中选择 / choose from the list")
        ws.add_data_validation(dv)
        dv.add(f"{col}2:{col}{max(n + 1, 2) + 500}")

    measurements = measurements or {}
    pos = _to_4326(hazards)
    ws = wb.active
    ws.title = HAZARD_SHEET

    def hazard_rows() -> Iterable[list[Any]]:
        for i, (h, (lon, lat)) in enumerate(zip(hazards, pos, strict=True), start=1):
            m = measurements.get(str(h["hazard_id"]), {})
            rule = " ".join(str(x) for x in (h.get("rule_id"), h.get("rule_source")) if x)
            kind = str(h.get("kind") or "")
            yield [i, h["hazard_id"],
                   f"{KIND_LABELS[kind]} ({kind})" if kind in KIND_LABELS else kind,
                   h.get("message_zh") or h.get("message_en"),
                   SEVERITY_LABELS.get(str(h.get("severity")), h.get("severity")),
                   lon, lat, h.get("station"), rule,
                   _num(m.get("distance_m")), _num(m.get("required_m")),
                   _num(m.get("shortfall_m")),
                   h.get("department"), h.get("responsible"), h.get("measures"),
                   h.get("deadline"), STATUS_LABELS.get(h["status"], h["status"]),
                   _date(h.get("closed_at"), tz),
                   "已消失" if h.get("detection") == "no_longer_detected" else "在册",
                   h.get("owner_role"), int(h.get("version") or 1)]

    n = sheet(ws, HAZARD_COLUMNS, hazard_rows())
    status_list(ws, HAZARD_COLUMNS, "整改状态", STATUS_LABELS.values(), n)
    for row in ws.iter_rows(min_row=2, min_col=4, max_col=4):
        for cell in row:
            cell.alignment = Alignment(wrap_text=False)

    wm = wb.create_sheet(MEASURE_SHEET)
    n = sheet(wm, MEASURE_COLUMNS, (
        [i, m["measure_id"], m.get("title"), "、".join(m.get("hazard_ids") or []),
         m.get("department"), m.get("kind"),
         MEASURE_STATUS_LABELS.get(m.get("status") or "", m.get("status")),
         m.get("deadline"), m.get("description"), m.get("owner_role"),
         int(m.get("version") or 1)]
        for i, m in enumerate(measures, start=1)))
    status_list(wm, MEASURE_COLUMNS, "状态", MEASURE_STATUS_LABELS.values(), n)

    _summary(wb.create_sheet(SUMMARY_SHEET), stats, monitoring, exported_at=exported_at,
             title=title, n_hazards=len(hazards), n_measures=len(measures))
    if isinstance(out, str | os.PathLike):
        wb.save(os.fspath(out))
    else:
        wb.save(out)  # type: ignore[arg-type]


def _printable(v: Any) -> Any:
    """``v`` with the control characters a worksheet cannot hold shown as U+FFFD."""
    if not isinstance(v, str):
        return v
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("\ufffd", v)


def _summary(ws: Any, stats: Mapping[str, Any], monitoring: Mapping[str, Any] | None, *,
             exported_at: str, title: str, n_hazards: int, n_measures: int) -> None:
    from openpyxl.styles import Font

    bold = Font(bold=True)
    ws.append([f"{title} 隐患整改汇总 / rectification summary"])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append(["导出时间 exported", exported_at])
    ws.append(["隐患清单行数", n_hazards, "整改措施清单行数", n_measures])
    ws.append(["整改率 = (已整改 + 已验收 + 已销号) / 总数；目标：占压与间距不足隐患 2022-12-31 前 100 % 整改"])
    head = ["分组", "总数", "已整改", "已销号", "未整改", "不再检出", "整改率", "目标", "期限",
            "达标"]
    for label, key in (("按类别 by kind", "by_kind"), ("按责任单位 by department",
                                                       "by_department"),
                       ("按年度 by year (first detected)", "by_year")):
        ws.append([])
        ws.append([label])
        ws.cell(row=ws.max_row, column=1).font = bold
        ws.append(head)
        for k, d in (stats.get(key) or {}).items():
            name = (f"{KIND_LABELS[k]} ({k})" if key == "by_kind" and k in KIND_LABELS
                    else _printable(k))
            target = d.get("target")
            if key == "by_kind" and target is None and k in RECTIFICATION_TARGETS:
                target = RECTIFICATION_TARGETS[k][0]
            ws.append([name, d["total"], d["rectified"], d["closed"], d["open"],
                       d["no_longer_detected"], d["rate"], target, d.get("deadline"),
                       None if "met" not in d else ("是" if d["met"] else "否")])
            ws.cell(row=ws.max_row, column=7).number_format = "0.0%"
            ws.cell(row=ws.max_row, column=8).number_format = "0%"
    ws.append([])
    ws.append(["合计 total", stats.get("total"), stats.get("rectified"), None, None, None,
               stats.get("rate")])
    ws.cell(row=ws.max_row, column=7).number_format = "0.0%"
    ws.append([])
    ws.append(["人员密集型高后果区视频监控覆盖率 HCA video monitoring"])
    ws.cell(row=ws.max_row, column=1).font = bold
    if monitoring is None:
        ws.append(["(no hca layer in the store)"])
    else:
        ws.append(["人员密集高后果区", monitoring["people_dense_hca"], "已监控",
                   monitoring["monitored"], "覆盖率", monitoring["coverage"]])
        ws.cell(row=ws.max_row, column=6).number_format = "0.0%"
        ws.append(["年度", "目标", "达标"])
        for t in monitoring["targets"]:
            ws.append([t["year"], t["target"], None if t["met"] is None
                       else ("是" if t["met"] else "否")])
            ws.cell(row=ws.max_row, column=2).number_format = "0%"
    ws.column_dimensions["A"].width = 34
    for col in "BCDEFGHIJ":
        ws.column_dimensions[col].width = 11


# --- reading --------------------------------------------------------------------------------
@dataclass
class _Row:
    sheet: str
    row: int
    record_id: str
    version: int | None
    fields: dict[str, Any]
    status: str | None = None


@dataclass
class WorkbookEdits:
    """What an edited workbook says, parsed and checked on its own (no store yet)."""

    name: str
    hazards: list[_Row] = field(default_factory=list)
    measures: list[_Row] = field(default_factory=list)
    problems: list[SheetProblem] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
    """What :func:`apply_workbook` changed."""

    hazards_updated: int
    transitions: int
    measures_created: int
    measures_updated: int
    unchanged: int

    def summary(self) -> str:
        return (f"{self.hazards_updated} hazard(s) updated, {self.transitions} status "
                f"change(s), {self.measures_created} measure(s) created, "
                f"{self.measures_updated} updated, {self.unchanged} row(s) unchanged")


def _text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def _cell_date(v: object) -> tuple[str | None, bool]:
    """(ISO date or None, ok)."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None, True
    if isinstance(v, dt.datetime):
        return v.date().isoformat(), True
    if isinstance(v, dt.date):
        return v.isoformat(), True
    try:
        return dt.date.fromisoformat(str(v).strip()).isoformat(), True
    except ValueError:
        return None, False


def _label_to_code(v: str | None, labels: Mapping[str, str]) -> str | None:
    if v is None:
        return None
    for code, label in labels.items():
        if v in (code, label):
            return code
    return None


def read_workbook(src: str | os.PathLike[str] | bytes, *, name: str | None = None
                  ) -> WorkbookEdits:
    """Parse an edited workbook (path or bytes): every row of the two lists with an id, its
    version and editable cells, and the problems found in the cells themselves."""
    from openpyxl import load_workbook

    if isinstance(src, bytes):
        label = name or "upload.xlsx"
        handle: Any = io.BytesIO(src)
    else:
        label = name or os.path.basename(os.fspath(src))
        handle = os.fspath(src)
    edits = WorkbookEdits(name=label)
    try:
        wb = load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException …
        edits.problems.append(SheetProblem(
            layer="(workbook)", feature=None, field=None, received=None,
            expected="an .xlsx workbook", note=f"{label} is not an .xlsx workbook "
            f"({type(exc).__name__}); export one with `riskmap registry export --format xlsx`"))
        return edits
    try:
        if HAZARD_SHEET not in wb.sheetnames and MEASURE_SHEET not in wb.sheetnames:
            edits.problems.append(SheetProblem(
                layer="(workbook)", feature=None, field=None, received=None, expected="",
                note=f"{label} has neither a {HAZARD_SHEET!r} nor a {MEASURE_SHEET!r} sheet "
                f"(sheets: {', '.join(wb.sheetnames)})"))
            return edits
        if HAZARD_SHEET in wb.sheetnames:
            _read_sheet(wb[HAZARD_SHEET], HAZARD_SHEET, "隐患编号", _HAZARD_EDITABLE,
                        edits.hazards, edits.problems, status_col="整改状态",
                        labels=STATUS_LABELS)
        if MEASURE_SHEET in wb.sheetnames:
            _read_sheet(wb[MEASURE_SHEET], MEASURE_SHEET, "措施编号", _MEASURE_EDITABLE,
                        edits.measures, edits.problems, status_col=None,
                        labels=MEASURE_STATUS_LABELS)
    finally:
        wb.close()
    return edits


def _read_sheet(ws: Any, sheet: str, id_col: str, editable: Mapping[str, str],
                out: list[_Row], problems: list[SheetProblem], *, status_col: str | None,
                labels: Mapping[str, str]) -> None:
    rows = ws.iter_rows(values_only=True)
    header = [(_text(c) or "") for c in next(rows, ())]
    col = {h: i for i, h in enumerate(header) if h}
    missing = [c for c in (id_col, "版本") if c not in col]
    if missing:
        problems.append(SheetProblem(
            layer=sheet, feature=None, field=None, received=None, expected="",
            note=f"the header row lacks column(s) {', '.join(missing)} (found: "
            f"{', '.join(h for h in header if h) or 'nothing'}); keep the exported header"))
        return
    seen: dict[str, int] = {}
    for rownum, values in enumerate(rows, start=2):
        if rownum > _MAX_ROWS:
            problems.append(SheetProblem(layer=sheet, feature=None, field=None, received=None,
                                         expected="", row=rownum,
                                         note=f"more than {_MAX_ROWS} rows"))
            return
        cells = list(values) + [None] * (len(header) - len(values))
        rid = _text(cells[col[id_col]])
        if rid is None:
            if any(_text(c) for c in cells):
                problems.append(SheetProblem(layer=sheet, feature=None, field=id_col,
                                             received=MISSING, expected="the record's id",
                                             row=rownum))
            continue
        if rid in seen:
            problems.append(SheetProblem(layer=sheet, feature=rid, field=id_col, received=rid,
                                         expected=f"each id once (also on row {seen[rid]})",
                                         row=rownum))
            continue
        seen[rid] = rownum
        raw_version = cells[col["版本"]]
        version: int | None = None
        if _text(raw_version) is not None:
            try:
                version = int(str(_text(raw_version)))
                if version < 1:
                    raise ValueError
            except ValueError:
                problems.append(SheetProblem(layer=sheet, feature=rid, field="版本",
                                             received=raw_version,
                                             expected="the version number exported (1, 2 …)",
                                             row=rownum))
                continue
        fields: dict[str, Any] = {}
        for header_name, key in editable.items():
            if header_name not in col:
                continue
            v = cells[col[header_name]]
            if key == "deadline":
                iso, ok = _cell_date(v)
                if not ok:
                    problems.append(SheetProblem(layer=sheet, feature=rid, field=header_name,
                                                 received=v, expected="a date YYYY-MM-DD",
                                                 row=rownum))
                    continue
                fields[key] = iso
            elif key == "hazard_ids":
                fields[key] = [x for x in _IDS_SPLIT.split(_text(v) or "") if x]
            elif key == "status":
                text = _text(v)
                code = _label_to_code(text, labels)
                if code is None and text is not None:
                    problems.append(SheetProblem(
                        layer=sheet, feature=rid, field=header_name, received=v,
                        expected="one of " + ", ".join(labels.values()), row=rownum))
                    continue
                if code is not None:
                    fields[key] = code
            else:
                fields[key] = _text(v)
        status = None
        if status_col is not None and status_col in col:
            text = _text(cells[col[status_col]])
            status = _label_to_code(text, labels)
            if status is None:
                problems.append(SheetProblem(
                    layer=sheet, feature=rid, field=status_col,
                    received=MISSING if text is None else cells[col[status_col]],
                    expected="one of " + ", ".join(labels.values()), row=rownum))
                continue
        out.append(_Row(sheet, rownum, rid, version, fields, status))


# --- applying -------------------------------------------------------------------------------
def _same(a: object, b: object) -> bool:
    return (a or None) == (b or None)


def apply_workbook(batch: Callable[[], Any], edits: WorkbookEdits, *, actor: Actor,
                   roles: Sequence[str] | None = None,
                   may_change: Callable[[str], bool] | None = None,
                   measure_owner: str = "planner") -> ImportReport:
    """Apply ``edits`` in ONE transaction of ``batch`` (a registry's ``batch`` method), or
    change nothing and raise :class:`WorkbookError` naming every problem.

    ``roles``: the owner roles whose records the caller may see (None: all); a row naming
    any other is "unknown". ``may_change(owner_role)``: whether the caller may change a record
    of that owner (default: yes). New measures get ``measure_owner``.
    """
    problems = list(edits.problems)
    allowed = may_change or (lambda _owner: True)
    if any(p.layer == "(workbook)" for p in problems):
        raise WorkbookError(edits.name, problems)
    counts = {"hazards": 0, "transitions": 0, "created": 0, "updated": 0, "unchanged": 0}
    order = {HAZARD_SHEET: 0, MEASURE_SHEET: 1}
    with batch() as tx:
        plan = _plan(tx, edits, problems, roles=roles, allowed=allowed)
        if problems:  # the cells' own problems and the store's, in sheet and row order
            problems.sort(key=lambda p: (order.get(p.layer, -1), p.row or 0))
            raise WorkbookError(edits.name, problems)
        _apply(tx, plan, counts, actor=actor, measure_owner=measure_owner)
    return ImportReport(counts["hazards"], counts["transitions"], counts["created"],
                        counts["updated"], counts["unchanged"])


def _plan(tx: RegistryTx, edits: WorkbookEdits, problems: list[SheetProblem], *,
          roles: Sequence[str] | None, allowed: Callable[[str], bool]
          ) -> list[tuple[str, _Row, dict[str, Any] | None, dict[str, Any], str | None]]:
    """Check every row against the store (inside the transaction); return the changes."""
    plan: list[tuple[str, _Row, dict[str, Any] | None, dict[str, Any], str | None]] = []
    for r in edits.hazards:
        rec = tx.hazard(r.record_id)
        if rec is None or (roles is not None and rec["owner_role"] not in roles):
            problems.append(SheetProblem(layer=r.sheet, feature=None, field="隐患编号",
                                         received=r.record_id,
                                         expected="the id of a hazard in the registry",
                                         row=r.row))
            continue
        if r.version is None:
            problems.append(SheetProblem(layer=r.sheet, feature=r.record_id, field="版本",
                                         received=MISSING, expected=f"the version exported "
                                         f"(the store has {rec['version']})", row=r.row))
            continue
        changes = {k: v for k, v in r.fields.items() if not _same(v, rec.get(k))}
        to = r.status if r.status != rec["status"] else None
        if not changes and to is None:
            plan.append(("same", r, rec, {}, None))
            continue
        if int(rec["version"]) != r.version:
            problems.append(SheetProblem(
                layer=r.sheet, feature=r.record_id, field="版本", received=r.version,
                expected=f"{rec['version']}, the version in the store", row=r.row,
                note=f"the hazard was changed in the store since the export (at "
                f"{rec.get('updated_at')}); export again and re-apply this row"))
            continue
        if not allowed(str(rec["owner_role"])):
            problems.append(SheetProblem(
                layer=r.sheet, feature=r.record_id, field=None, received=None, expected="",
                row=r.row, note=f"the hazard belongs to role {rec['owner_role']!r}; this "
                "role may not change it"))
            continue
        if rec["status"] == "closed":
            problems.append(SheetProblem(
                layer=r.sheet, feature=r.record_id, field="整改状态" if to else None,
                received=STATUS_LABELS.get(r.status or "", r.status) if to else None,
                expected="", row=r.row, note="the hazard is closed (已销号): its record is "
                "final and cannot be edited"))
            continue
        if to is not None and to not in TRANSITIONS[rec["status"]]:
            now = STATUS_LABELS[rec["status"]]
            nxt = " or ".join(STATUS_LABELS[s] for s in TRANSITIONS[rec["status"]])
            problems.append(SheetProblem(
                layer=r.sheet, feature=r.record_id, field="整改状态",
                received=STATUS_LABELS[to], row=r.row,
                expected=f"{now} (unchanged)" + (f" or {nxt} (allowed next from {now})"
                                                 if nxt else "")))
            continue
        plan.append(("hazard", r, rec, changes, to))
    hazard_ids_known: set[str] = set()
    for r in edits.measures:
        m = tx.measure(r.record_id)
        visible = m is not None and (roles is None or m["owner_role"] in roles)
        for hid in r.fields.get("hazard_ids") or []:
            if hid in hazard_ids_known:
                continue
            h = tx.hazard(hid)
            if h is None or (roles is not None and h["owner_role"] not in roles):
                problems.append(SheetProblem(layer=r.sheet, feature=r.record_id,
                                             field="关联隐患", received=hid,
                                             expected="ids of hazards in the registry",
                                             row=r.row))
            else:
                hazard_ids_known.add(hid)
        if m is None or not visible:
            if m is not None or r.version is not None:
                # another role's measure, or a version for a measure that does not exist
                problems.append(SheetProblem(
                    layer=r.sheet, feature=None, field="措施编号", received=r.record_id,
                    expected="the id of a measure in the registry, or a new id with an "
                    "empty 版本", row=r.row))
                continue
            if not r.fields.get("title"):
                problems.append(SheetProblem(layer=r.sheet, feature=r.record_id,
                                             field="措施名称", received=MISSING,
                                             expected="a title for the new measure",
                                             row=r.row))
                continue
            plan.append(("new_measure", r, None, dict(r.fields), None))
            continue
        changes = {k: v for k, v in r.fields.items() if not _same(v, m.get(k))}
        if not changes:
            plan.append(("same", r, m, {}, None))
            continue
        if r.version is None or int(m["version"]) != r.version:
            problems.append(SheetProblem(
                layer=r.sheet, feature=r.record_id, field="版本",
                received=MISSING if r.version is None else r.version,
                expected=f"{m['version']}, the version in the store", row=r.row,
                note="the measure was changed in the store since the export (at "
                f"{m.get('updated_at')}); export again and re-apply this row"))
            continue
        if not allowed(str(m["owner_role"])):
            problems.append(SheetProblem(
                layer=r.sheet, feature=r.record_id, field=None, received=None, expected="",
                row=r.row, note=f"the measure belongs to role {m['owner_role']!r}; this "
                "role may not change it"))
            continue
        plan.append(("measure", r, m, changes, None))
    return plan


def _apply(tx: RegistryTx, plan: Sequence[tuple[str, _Row, dict[str, Any] | None,
                                                dict[str, Any], str | None]],
           counts: dict[str, int], *, actor: Actor, measure_owner: str) -> None:
    for what, r, rec, changes, to in plan:
        if what == "same":
            counts["unchanged"] += 1
        elif what == "hazard":
            assert rec is not None
            version = int(rec["version"])
            if changes:
                version = int(tx.update(r.record_id, changes, actor=actor,
                                        expected_version=version,
                                        action="import:update")["version"])
                counts["hazards"] += 1
            if to is not None:
                tx.transition(r.record_id, to, actor=actor, expected_version=version,
                              note=f"Excel import (row {r.row})")
                counts["transitions"] += 1
        elif what == "new_measure":
            tx.put_measure(r.record_id, changes, owner_role=measure_owner, actor=actor,
                           expected_version=0)
            counts["created"] += 1
        else:
            assert rec is not None
            tx.put_measure(r.record_id, changes, owner_role=str(rec["owner_role"]),
                           actor=actor, expected_version=int(rec["version"]))
            counts["updated"] += 1


assert set(STATUS_LABELS) == set(STATUSES)
assert set(MEASURE_STATUS_LABELS) == set(MEASURE_STATUSES)
