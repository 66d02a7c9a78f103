"""Charts of the registry dashboard, drawn on the server (matplotlib, offline: no script, no
font or library loaded by the browser): inline SVG for the page, one PNG for reports.

Every chart draws from the dashboard's numbers (the dict served by ``/registry/stats`` plus
ages and the overdue list), so the page, the PNG and the API agree by construction.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["CHARTS", "chart_svg", "dashboard_png"]

_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC", "SimHei",
          "DejaVu Sans"]
_DONE, _TARGET, _OPEN, _MISS = "#2e7d32", "#c62828", "#9e9e9e", "#ef6c00"


def _rc() -> Any:
    return {"font.family": "sans-serif", "font.sans-serif": _FONTS, "font.size": 9,
            "svg.hashsalt": "riskmap", "svg.fonttype": "path", "axes.spines.top": False,
            "axes.spines.right": False}


def _rates(ax: Any, groups: Mapping[str, Mapping[str, Any]], title: str) -> None:
    names = list(groups)[:12]
    if not names:
        ax.text(0.5, 0.5, "无数据 no hazards", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(title)
        return
    rates = [100 * (groups[n].get("rate") or 0) for n in names]
    ys = list(range(len(names)))[::-1]
    ax.barh(ys, [100] * len(names), color="#eeeeee", height=0.6)
    ax.barh(ys, rates, color=_DONE, height=0.6)
    for y, n, r in zip(ys, names, rates, strict=True):
        g = groups[n]
        label = f"{r:.1f} % ({g['rectified']}/{g['total']})"
        ax.text(min(r, 100) + 1, y, label, va="center", fontsize=8)
        target = g.get("target")
        if target is not None:
            ax.plot([100 * target] * 2, [y - 0.4, y + 0.4], color=_TARGET, lw=2)
    ax.set_yticks(ys, [n[:18] for n in names])
    ax.set_ylim(-0.6, max(len(names), 4) - 0.4)  # a few groups keep slim bars
    ax.set_xlim(0, 130)
    ax.set_xticks([0, 25, 50, 75, 100], ["0", "25", "50", "75", "100 %"])
    ax.set_title(title)


def _by_kind(ax: Any, d: Mapping[str, Any]) -> None:
    _rates(ax, d["stats"]["by_kind"], "整改率 按类别 (红线: 规划目标) rate by kind vs target")


def _by_department(ax: Any, d: Mapping[str, Any]) -> None:
    _rates(ax, d["stats"]["by_department"], "整改率 按责任单位 rate by department")


def _by_year(ax: Any, d: Mapping[str, Any]) -> None:
    _rates(ax, d["stats"]["by_year"], "整改率 按发现年度 rate by year found")


def _monitoring(ax: Any, d: Mapping[str, Any]) -> None:
    mon = d["stats"].get("monitoring")
    ax.set_title("人员密集型高后果区视频监控覆盖率 HCA video monitoring")
    if not mon:
        ax.text(0.5, 0.5, "无高后果区图层 no hca layer", ha="center", va="center")
        ax.set_axis_off()
        return
    years = [str(t["year"]) for t in mon["targets"]]
    targets = [100 * t["target"] for t in mon["targets"]]
    cov = 100 * (mon["coverage"] or 0)
    xs = list(range(len(years)))
    ax.bar(xs, targets, color="#ffffff", edgecolor=_TARGET, width=0.6, label="目标 target")
    ax.bar(xs, [cov] * len(xs), color=[_DONE if cov >= t else _MISS for t in targets],
           width=0.35, label=f"现状 now {cov:.1f} %")
    for x, t in zip(xs, targets, strict=True):
        ax.text(x, t + 2, f"{t:.0f} %", ha="center", fontsize=8, color=_TARGET)
    ax.set_xticks(xs, years)
    ax.set_ylim(0, 115)
    ax.set_ylabel("%")
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _ages(ax: Any, d: Mapping[str, Any]) -> None:
    ages = d["open_by_age"]
    ax.set_title("未整改隐患 按已发现时长 open hazards by age")
    xs = list(range(len(ages)))
    counts = [a["count"] for a in ages]
    ax.bar(xs, counts, color=_OPEN, width=0.6)
    for x, c in zip(xs, counts, strict=True):
        ax.text(x, c, str(c), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs, [a["label"] for a in ages])
    ax.set_ylim(0, max([*counts, 1]) * 1.2)


CHARTS: dict[str, Callable[[Any, Mapping[str, Any]], None]] = {
    "by_kind": _by_kind, "by_department": _by_department, "by_year": _by_year,
    "monitoring": _monitoring, "ages": _ages,
}


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return Figure(figsize=(width, height), layout="constrained")


def chart_svg(name: str, numbers: Mapping[str, Any]) -> str:
    """Chart ``name`` (a key of :data:`CHARTS`) as an inline ``<svg>`` element scaling to its
    container (text drawn as paths: no font needed by the browser)."""
    import matplotlib

    with matplotlib.rc_context(_rc()):
        fig = _figure(6.4, 3.2)
        CHARTS[name](fig.add_subplot(), numbers)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                 rf'<svg\1 class="chart" data-chart="{name}" role="img" '
                 'preserveAspectRatio="xMidYMid meet"', svg, count=1)
    return svg


def dashboard_png(numbers: Mapping[str, Any], *, title: str = "") -> bytes:
    """Every chart on one PNG (for reports), 150 dpi."""
    import matplotlib

    with matplotlib.rc_context(_rc()):
        fig = _figure(12.8, 10.0)
        axes = fig.subplots(3, 2)
        for ax, draw in zip(axes.flat, CHARTS.values(), strict=False):
            draw(ax, numbers)
        axes.flat[-1].set_axis_off()
        text = numbers.get("summary_text", "")
        axes.flat[-1].text(0, 0.9, text, va="top", fontsize=10, wrap=True)
        if title:
            fig.suptitle(title, fontsize=13)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
    return buf.getvalue()
