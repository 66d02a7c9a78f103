"""geo.inspection: overdue / missing statutory inspection on the district's date, the rate."""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pytest
import shapely

from geo.errors import CRSError
from geo.inspection import inspection_findings, inspection_rate, inspection_status

RULE = {"id": "periodic_inspection", "interval_years": 3, "severity": "high",
        "missing_severity": "medium", "source": "TSG D7003", "source_en": "TSG D7003"}
ON = date(2026, 12, 7)


def _pipes(rows: list[tuple]) -> gpd.GeoDataFrame:
    ids, status, last, nxt, lens = zip(*rows, strict=True)
    geoms = [shapely.LineString([(0, i * 100), (ln, i * 100)]) for i, ln in enumerate(lens)]
    return gpd.GeoDataFrame({"id": ids, "status": status, "last_inspection": last,
                             "next_inspection_due": nxt}, geometry=geoms, crs=4548)


def test_due_day_valid_day_after_overdue_and_interval() -> None:
    p = _pipes([
        ("A", "in_service", None, "2026-12-07", 1000.0),   # due today: valid
        ("B", "in_service", None, "2026-12-06", 500.0),    # due yesterday: 1 day overdue
        ("C", "in_service", "2023-12-07", None, 300.0),    # last + 3 y = today: valid
        ("D", "in_service", "2023-12-06", None, 200.0),    # last + 3 y = yesterday: overdue
        ("E", "in_service", None, None, 100.0),            # no record
        ("F", "idle", None, "2000-01-01", 50.0),           # not in service: out of scope
        ("G", None, "2020-02-29", "2027-01-01", 400.0),    # due date governs; None = in service
    ])
    st = inspection_status(p, on=ON, interval_years=3)
    assert st["state"].tolist() == ["valid", "overdue", "valid", "overdue", "no_record",
                                    "out_of_scope", "valid"]
    assert st["days_overdue"].tolist() == [0, 1, 0, 1, 0, 0, 0]
    assert st["due"].tolist() == ["2026-12-07", "2026-12-06", "2026-12-07", "2026-12-06", None,
                                  "2000-01-01", "2027-01-01"]
    assert st["due_from"].tolist() == ["next_inspection_due", "next_inspection_due",
                                       "last_inspection", "last_inspection", None,
                                       "next_inspection_due", "next_inspection_due"]
    rate = inspection_rate(st)
    assert rate == {"pipelines": 6, "valid": 3, "overdue": 2, "no_record": 1,
                    "rate_count": 0.5, "length_m": 2500.0, "valid_m": 1700.0,
                    "rate_length": 0.68}


def test_leap_day_interval_and_dates_as_date_objects() -> None:
    p = _pipes([("A", "in_service", date(2020, 2, 29), None, 10.0)])
    assert inspection_status(p, on=date(2023, 2, 28), interval_years=3)["state"].iloc[0] == "valid"
    st = inspection_status(p, on=date(2023, 3, 1), interval_years=3)
    assert (st["state"].iloc[0], st["days_overdue"].iloc[0]) == ("overdue", 1)


def test_findings_exact_messages() -> None:
    p = _pipes([("B", "in_service", "2020-01-01", "2026-12-01", 500.0),
                ("D", "in_service", "2023-12-06", None, 200.0),
                ("E", "in_service", None, None, 100.0),
                ("OK", "in_service", None, "2030-01-01", 100.0)])
    f = inspection_findings(inspection_status(p, on=ON, interval_years=3), rule=RULE, on=ON)
    assert f["finding_id"].tolist() == ["inspection_missing:E", "inspection_overdue:B",
                                        "inspection_overdue:D"]
    assert f["severity"].tolist() == ["medium", "high", "high"]
    assert f["message_en"].tolist() == [
        "Pipeline E in service has no inspection record (neither last_inspection nor "
        "next_inspection_due is set). Rule: TSG D7003.",
        "Pipeline B in service is overdue for statutory inspection: next inspection was due "
        "2026-12-01; 6 days overdue on 2026-12-07. Rule: TSG D7003.",
        "Pipeline D in service is overdue for statutory inspection: last inspected 2023-12-06, "
        "due 2026-12-06 on a 3-year interval; 1 days overdue on 2026-12-07. Rule: TSG D7003."]
    assert f["message_zh"].iloc[1] == ("在役管道 B 法定检验已过期：下次检验日期 2026-12-01，"
                                       "至 2026-12-07 逾期 6 天。依据：TSG D7003。")
    assert f.geometry.length.tolist() == [100.0, 500.0, 200.0]


def test_no_pipeline_in_service_rate_is_none_and_no_findings() -> None:
    st = inspection_status(_pipes([("F", "idle", None, None, 5.0)]), on=ON, interval_years=3)
    assert inspection_rate(st)["rate_count"] is None
    assert inspection_findings(st, rule=RULE, on=ON).empty


def test_bad_date_and_crs_named() -> None:
    p = _pipes([("A", "in_service", "2023-13-45", None, 10.0)])
    with pytest.raises(ValueError, match=r"feature 'A': last_inspection is '2023-13-45'; "
                                         r"expected a date \(YYYY-MM-DD\)"):
        inspection_status(p, on=ON, interval_years=3)
    with pytest.raises(CRSError):
        inspection_status(p.set_crs(4490, allow_override=True), on=ON, interval_years=3)
    with pytest.raises(ValueError, match="interval_years is 0"):
        inspection_status(_pipes([("A", "in_service", None, None, 1.0)]), on=ON,
                          interval_years=0)
