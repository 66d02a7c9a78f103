"""Statutory inspection (法定检验) of pipelines in service: overdue lines and the inspection rate.

A pipeline whose ``status`` is one of ``statuses`` (in service) is judged on the district's
date ``on``:

- ``next_inspection_due`` given → *valid* while ``on <= next_inspection_due`` (the due day
  itself is still valid), else *overdue*. The due date set by the inspection body governs
  (TSG D7003 lets it lengthen or shorten the interval by the line's safety grade);
- no due date, ``last_inspection`` given → due ``interval_years`` after it (calendar years;
  29 Feb + 3 years = 28 Feb);
- neither → *no_record*.

Other pipelines are *out_of_scope*. The rate is the share of in-service pipelines — by count
and by length, as the plan's half-yearly report asks — whose inspection is valid.

Example
-------
>>> st = inspection_status(pipes, on=date(2026, 12, 7), interval_years=3)   # doctest: +SKIP
>>> inspection_rate(st)["rate_length"]                                     # doctest: +SKIP
0.82
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.crs import require_projected
from geo.findings import empty_findings, make_findings

__all__ = [
    "INSPECTION_STATES",
    "inspection_findings",
    "inspection_rate",
    "inspection_status",
]

INSPECTION_STATES = ("valid", "overdue", "no_record", "out_of_scope")
_DATE_FIELDS = ("last_inspection", "next_inspection_due")


def _dates(pipelines: gpd.GeoDataFrame, field: str) -> pd.Series:
    """The dates of ``field`` as datetime64 (NaT where empty); ValueError naming the first
    feature whose value is not a date."""
    if field not in pipelines:
        return pd.Series(pd.NaT, index=pipelines.index, dtype="datetime64[ns]")
    raw = pipelines[field]
    out = pd.to_datetime(raw, errors="coerce", format="mixed") if raw.dtype == object else \
        pd.to_datetime(raw, errors="coerce")
    bad = out.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        fid = pipelines["id"].iloc[i] if "id" in pipelines else i
        raise ValueError(f"layer 'pipelines', feature {str(fid)!r}: {field} is "
                         f"{raw.iloc[i]!r}; expected a date (YYYY-MM-DD)")
    return out.dt.tz_localize(None) if getattr(out.dt, "tz", None) is not None else out


def inspection_status(
    pipelines: gpd.GeoDataFrame, *, on: date, interval_years: int,
    statuses: Sequence[str] = ("in_service",),
) -> gpd.GeoDataFrame:
    """Inspection state of every pipeline on the date ``on``.

    Parameters
    ----------
    pipelines
        Projected, metres; ``id``, optional ``status`` (missing = in service),
        ``last_inspection``, ``next_inspection_due``.
    on
        The district's date (never the OS clock: the caller passes it).
    interval_years
        Interval after ``last_inspection`` when no due date is recorded (>= 1).
    statuses
        Statuses counted as in service.

    Returns
    -------
    GeoDataFrame aligned to ``pipelines`` (same index) with ``pipeline_id``, ``status``,
    ``in_scope``, ``last_inspection``, ``next_inspection_due``, ``due`` (ISO text or None),
    ``due_from`` (``next_inspection_due`` / ``last_inspection`` / None), ``state`` (one of
    :data:`INSPECTION_STATES`), ``days_overdue`` (0 unless overdue), ``length_m``.
    """
    require_projected(pipelines, "pipelines")
    if int(interval_years) < 1:
        raise ValueError(f"interval_years is {interval_years!r}; expected a whole number >= 1")
    day = pd.Timestamp(on)
    last = _dates(pipelines, "last_inspection")
    nxt = _dates(pipelines, "next_inspection_due")
    by_last = last + pd.DateOffset(years=int(interval_years))
    due = nxt.where(nxt.notna(), by_last)
    due_from = pd.Series([("next_inspection_due" if n else "last_inspection" if la else None)
                          for n, la in zip(nxt.notna(), last.notna(), strict=True)],
                         index=pipelines.index, dtype=object)
    status = (pipelines["status"].fillna("in_service").astype(str) if "status" in pipelines
              else pd.Series("in_service", index=pipelines.index))
    in_scope = status.isin(list(statuses)).to_numpy()
    state = np.where(~in_scope, "out_of_scope",
                     np.where(due.isna(), "no_record",
                              np.where(due < day, "overdue", "valid")))
    late = np.where(state == "overdue", (day - due).dt.days.fillna(0).to_numpy(), 0)

    def iso(s: pd.Series) -> pd.Series:
        return pd.Series([None if pd.isna(v) else v.date().isoformat() for v in s],
                         index=pipelines.index, dtype=object)

    return gpd.GeoDataFrame({
        "pipeline_id": pipelines["id"].astype(str).to_numpy() if "id" in pipelines
        else np.arange(len(pipelines)).astype(str),
        "status": status.to_numpy(), "in_scope": in_scope,
        "last_inspection": iso(last), "next_inspection_due": iso(nxt), "due": iso(due),
        "due_from": due_from, "state": state, "days_overdue": late.astype(np.int64),
        "length_m": np.round(pipelines.geometry.length.to_numpy(dtype=float), 3),
    }, geometry=pipelines.geometry.to_numpy(), index=pipelines.index, crs=pipelines.crs)


def inspection_rate(status: pd.DataFrame) -> dict[str, Any]:
    """Inspection rate of the in-scope pipelines of an :func:`inspection_status` frame:
    ``pipelines``, ``valid``, ``overdue``, ``no_record``, ``rate_count``, ``length_m``,
    ``valid_m``, ``rate_length`` (rates None when there is no pipeline in service)."""
    s = status[status["in_scope"].astype(bool)]
    n, total = len(s), float(s["length_m"].sum())
    ok = s["state"] == "valid"
    valid_m = float(s.loc[ok, "length_m"].sum())
    return {
        "pipelines": n, "valid": int(ok.sum()),
        "overdue": int((s["state"] == "overdue").sum()),
        "no_record": int((s["state"] == "no_record").sum()),
        "rate_count": round(int(ok.sum()) / n, 6) if n else None,
        "length_m": round(total, 3), "valid_m": round(valid_m, 3),
        "rate_length": round(valid_m / total, 6) if total > 0 else None,
    }


def inspection_findings(
    status: gpd.GeoDataFrame, *, rule: Mapping[str, Any], on: date,
    rule_source: str | None = None,
) -> gpd.GeoDataFrame:
    """``inspection_overdue`` and ``inspection_missing`` findings of an
    :func:`inspection_status` frame (``rule``: the ``inspection`` row: ``id``, ``source``,
    ``interval_years``, ``severity``, ``missing_severity``)."""
    crs = status.crs
    src = rule_source or str(rule["source"])
    src_en = str(rule.get("source_en", src))
    years = int(rule["interval_years"])
    frames = []
    late = status[status["state"] == "overdue"]
    if len(late):
        df = pd.DataFrame({
            "feature_id": late["pipeline_id"].to_numpy(), "due": late["due"].to_numpy(),
            "due_from": late["due_from"].to_numpy(),
            "last_inspection": late["last_inspection"].to_numpy(),
            "next_inspection_due": late["next_inspection_due"].to_numpy(),
            "days_overdue": late["days_overdue"].to_numpy(),
            "length_m": late["length_m"].to_numpy(), "on": on.isoformat(),
        })
        df["severity"] = str(rule.get("severity", "high"))
        df["message_zh"] = [
            f"在役管道 {p} 法定检验已过期：" + (f"下次检验日期 {d}" if f == "next_inspection_due"
                                        else f"上次检验 {li}，按 {years} 年周期应于 {d} 前检验")
            + f"，至 {on.isoformat()} 逾期 {n} 天。依据：{src}。"
            for p, d, f, li, n in zip(df["feature_id"], df["due"], df["due_from"],
                                      df["last_inspection"], df["days_overdue"], strict=True)]
        df["message_en"] = [
            f"Pipeline {p} in service is overdue for statutory inspection: " + (
                f"next inspection was due {d}" if f == "next_inspection_due"
                else f"last inspected {li}, due {d} on a {years}-year interval")
            + f"; {n} days overdue on {on.isoformat()}. Rule: {src_en}."
            for p, d, f, li, n in zip(df["feature_id"], df["due"], df["due_from"],
                                      df["last_inspection"], df["days_overdue"], strict=True)]
        frames.append(make_findings(_common(df, rule, src), kind="inspection_overdue",
                                    geometry=late.geometry.to_numpy(), crs=crs,
                                    id_columns=["feature_id"]))
    none = status[status["state"] == "no_record"]
    if len(none):
        df = pd.DataFrame({"feature_id": none["pipeline_id"].to_numpy(),
                           "length_m": none["length_m"].to_numpy(), "on": on.isoformat()})
        df["severity"] = str(rule.get("missing_severity", rule.get("severity", "high")))
        df["message_zh"] = [f"在役管道 {p} 无法定检验记录（last_inspection 与 "
                            f"next_inspection_due 均为空）。依据：{src}。"
                            for p in df["feature_id"]]
        df["message_en"] = [f"Pipeline {p} in service has no inspection record (neither "
                            f"last_inspection nor next_inspection_due is set). Rule: {src_en}."
                            for p in df["feature_id"]]
        frames.append(make_findings(_common(df, rule, src), kind="inspection_missing",
                                    geometry=none.geometry.to_numpy(), crs=crs,
                                    id_columns=["feature_id"]))
    if not frames:
        return empty_findings(crs)
    out = pd.concat(frames, ignore_index=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=crs).sort_values(
        "finding_id", kind="stable").reset_index(drop=True)


def _common(df: pd.DataFrame, rule: Mapping[str, Any], src: str) -> pd.DataFrame:
    df["layer"] = "pipelines"
    df["rule_id"] = str(rule["id"])
    df["rule_source"] = src
    df["interval_years"] = int(rule["interval_years"])
    return df
