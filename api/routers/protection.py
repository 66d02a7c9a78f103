"""Machine early warning: ``POST /protection/positions``, ``GET /protection/alerts`` (Server-Sent
Events) and the live page ``/maps/protection`` (issue 16).

A positioning system posts batches of machine positions; each position inside a zone where its
kind of work is forbidden, or needs a permit no active site containing it holds valid that day,
becomes an alert — in the response, and on the event stream of every open ``/protection/alerts``
(police, planner, admin). The zones come from :class:`api.service.AnalysisService` (built once per
store version and rules version). Construction-site findings are the ``protection_findings``
collection (``/collections/protection_findings/items``).

The event stream is left out of the OpenAPI document (an endless ``text/event-stream`` has no
schema a client generator or fuzzer can use); it ends after ``timeout_s`` (default 300 s) and
the browser's ``EventSource`` reconnects with ``Last-Event-ID``, missing nothing the hub still
keeps (the last 1000 alerts).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Forbidden, Principal, Unauthorized, get_principal, require_read
from api.deps import get_service
from api.errors import BadRequest
from api.ogc import check_params, esc

__all__ = ["ALERT_ROLES", "AlertHub", "PositionsIn", "PositionsOut", "hub", "router"]

router = APIRouter(tags=["Protection"])

ALERT_ROLES = frozenset({"police", "planner", "admin"})
_KEEP = 1000
_KEEPALIVE_S = 15.0


class AlertHub:
    """Alerts fanned out to the open event streams; the last ``keep`` kept for reconnects.

    ``publish`` may be called from any thread (the POST handler runs in the thread pool);
    each subscriber is an asyncio queue on its own event loop.
    """

    def __init__(self, keep: int = _KEEP) -> None:
        self._seq = 0
        self._recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=keep)
        self._subs: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[int, Any]]]] = set()
        self._lock = threading.Lock()

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        """Number the alerts and send them to every subscriber."""
        with self._lock:
            batch = []
            for a in alerts:
                self._seq += 1
                batch.append((self._seq, a))
            self._recent.extend(batch)
            subs = list(self._subs)
        for loop, queue in subs:
            for item in batch:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, item)
                except RuntimeError:  # that loop is closed: its stream is gone
                    self._subs.discard((loop, queue))

    def subscribe(self, since: int | None
                  ) -> tuple[asyncio.Queue[tuple[int, Any]], list[tuple[int, Any]]]:
        """A queue of new alerts and the kept ones numbered after ``since`` (None: none)."""
        queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        with self._lock:
            self._subs.add((asyncio.get_running_loop(), queue))
            backlog = [] if since is None else [x for x in self._recent if x[0] > since]
        return queue, backlog

    def unsubscribe(self, queue: asyncio.Queue[tuple[int, Any]]) -> None:
        with self._lock:
            self._subs = {s for s in self._subs if s[1] is not queue}

    @property
    def last_id(self) -> int:
        return self._seq


_HUB_LOCK = threading.Lock()


def hub(request: Request) -> AlertHub:
    """The app's alert hub (made on first use)."""
    h = getattr(request.app.state, "protection_alerts", None)
    if h is None:
        with _HUB_LOCK:
            h = getattr(request.app.state, "protection_alerts", None)
            if h is None:
                h = request.app.state.protection_alerts = AlertHub()
    return h  # type: ignore[no-any-return]


# --- POST /protection/positions ----------------------------------------------------------------
class PositionIn(BaseModel):
    """One machine position; values are checked row by row (a bad row is named, the rest are
    checked)."""

    model_config = ConfigDict(extra="forbid")

    machine_id: str | int | None = Field(None, description="the machine's id")
    kind: str | None = Field(None, max_length=100, description="work kind (excavation, "
                             "开挖 …) or machine name (excavator, 挖掘机 …)")
    time: str | None = Field(None, max_length=64, description="ISO 8601; without an offset "
                             "read in the district's time zone")
    lon: float | str | None = Field(None, description="longitude (degrees)")
    lat: float | str | None = Field(None, description="latitude (degrees)")


class PositionsIn(BaseModel):
    """A batch of positions; lon/lat in ``crs`` (default EPSG:4326, GPS)."""

    model_config = ConfigDict(extra="forbid")

    crs: str | None = Field(None, max_length=200, description="EPSG:4326 (default), "
                            "EPSG:4490 or GCJ-02")
    positions: list[PositionIn] = Field(max_length=100_000)


class AlertOut(BaseModel):
    alert_id: str
    machine_id: str
    kind: str
    work: str
    time: str
    lon: float
    lat: float
    severity: str
    rule_id: str
    rule_source: str
    clause: str
    other_layer: str
    other_id: str
    pipeline_id: str | None
    distance_m: float
    required_m: float
    message_zh: str
    message_en: str


class RejectedRow(BaseModel):
    row: int = Field(description="index of the position in the batch (0-based)")
    machine_id: str | None
    field: str
    received: str | float | int | None
    expected: str


class PositionsOut(BaseModel):
    checked: int = Field(description="positions checked (the rows not refused)")
    alerts: list[AlertOut]
    rejected: list[RejectedRow]
    crs: str = Field(description="the CRS the lon/lat were read in")
    applied: dict[str, str | None] = Field(description="rules (file hash) and time zone")


def _records(frame: Any) -> list[dict[str, Any]]:
    recs: list[dict[str, Any]] = frame.to_dict("records")
    for r in recs:
        if r.get("pipeline_id") != r.get("pipeline_id"):  # NaN
            r["pipeline_id"] = None
    return recs


@router.post(
    "/protection/positions", response_model=PositionsOut, operation_id="checkPositions",
    summary="Machine early warning: check a batch of machine positions",
    description="Each position inside a pipeline protection zone where its kind of work is "
    "forbidden (critical: within 5 m of the centre line, Art 30; river crossings Art 32; "
    "tunnels Art 33) or needs a permit (Art 35) that no active construction site of that work "
    "containing it holds valid on the position's date (high) gives an alert, returned here and "
    "sent to every open `GET /protection/alerts` stream. Rows that cannot be read are listed "
    "in `rejected` (the others are checked). Roles: police, planner, admin.",
    responses={400: {}, 401: {}, 403: {}, 404: {"description": "the store has no pipelines"},
               422: {}})
def post_positions(request: Request, body: PositionsIn,
                   principal: Annotated[Principal, Depends(get_principal)]) -> PositionsOut:
    check_params(request, ())
    require_read(principal, ALERT_ROLES, "the machine early warning")
    from api.runs.protection import check_records

    svc = get_service(request)
    alerts, batch = check_records(svc, [p.model_dump() for p in body.positions], crs=body.crs)
    recs = _records(alerts)
    if recs:
        hub(request).publish(recs)
    return PositionsOut(checked=len(batch), alerts=[AlertOut(**r) for r in recs],
                        rejected=[RejectedRow(**r) for r in batch.rejected], crs=batch.crs,
                        applied=svc.applied())


# --- GET /protection/alerts (Server-Sent Events) -----------------------------------------------
def _event(seq: int, alert: dict[str, Any]) -> str:
    return (f"id: {seq}\nevent: alert\n"
            f"data: {json.dumps(alert, ensure_ascii=False, allow_nan=False)}\n\n")


@router.get("/protection/alerts", include_in_schema=False, operation_id="streamAlerts",
            response_class=StreamingResponse)
async def stream_alerts(
    request: Request,
    since: Annotated[int | None, Query(ge=0, description="send kept alerts after this id")] = None,
    timeout_s: Annotated[float, Query(gt=0, le=3600)] = 300.0,
    max_events: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """New alerts as Server-Sent Events (``event: alert``, ``id`` = alert number, ``data`` =
    the alert as JSON). ``Last-Event-ID`` (sent by a reconnecting EventSource) or ``since``
    replays the kept alerts after it."""
    check_params(request, ("since", "timeout_s", "max_events"))
    require_read(get_principal(request), ALERT_ROLES, "the machine alert stream")
    last = request.headers.get("last-event-id")
    if last is not None:
        try:
            since = int(last)
        except ValueError:
            raise BadRequest(f"Last-Event-ID is {last!r}; expected an alert number") from None
    h = hub(request)
    queue, backlog = h.subscribe(since)

    async def events() -> AsyncIterator[str]:
        sent = 0
        deadline = time.monotonic() + timeout_s
        try:
            yield f"retry: 2000\n: riskmap alerts, last id {h.last_id}\n\n"
            for seq, a in backlog:
                yield _event(seq, a)
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                try:
                    seq, a = await asyncio.wait_for(queue.get(), min(left, _KEEPALIVE_S))
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                if backlog and seq <= backlog[-1][0]:
                    continue  # already sent from the backlog
                yield _event(seq, a)
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
        finally:
            h.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# --- the live page --------------------------------------------------------------------------------
@router.get("/maps/protection", response_class=HTMLResponse, operation_id="getProtectionMap",
            summary="Live machine early-warning map (machines and alerts)",
            responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}},
                       303: {"description": "a browser without a session: sign in first"},
                       400: {}, 401: {}, 403: {}})
def protection_page(request: Request) -> Response:
    check_params(request, ())
    try:
        require_read(get_principal(request), ALERT_ROLES, "the machine early-warning map")
    except (Unauthorized, Forbidden):
        if "text/html" in request.headers.get("accept", ""):
            from urllib.parse import quote

            root = request.scope.get("root_path", "").rstrip("/")
            return RedirectResponse(f"{root}/signin?next={quote(root + request.url.path)}",
                                    status_code=303)
        raise
    root = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(_PAGE.replace("{root}", esc(root)))


_PAGE = """<!DOCTYPE html>
<html lang="zh"><head><meta charset="utf-8">
<title>第三方施工机械定位预警 · Machine early warning</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{root}/static/maps/leaflet/leaflet.css">
<style>
html, body { height: 100%; margin: 0; font: 14px sans-serif; }
#map { position: absolute; top: 0; bottom: 0; left: 0; right: 340px; }
#panel { position: absolute; top: 0; bottom: 0; right: 0; width: 340px; overflow-y: auto;
         border-left: 1px solid #ccc; background: #fafafa; }
#panel h1 { font-size: 15px; margin: 8px; }
#status { margin: 0 8px 8px; color: #555; }
.alert { margin: 4px 8px; padding: 6px; border-radius: 4px; background: #fff;
         border-left: 5px solid #f0a000; }
.alert.critical { border-left-color: #d00000; }
.alert .t { color: #666; font-size: 12px; }
</style></head>
<body><div id="map"></div>
<div id="panel"><h1>第三方施工机械定位预警<br>Machine early warning</h1>
<div id="status">connecting…</div><div id="alerts"></div></div>
<script src="{root}/static/maps/leaflet/leaflet.js"></script>
<script src="{root}/static/maps/protection/live.js"></script>
<script>riskmapProtectionLive({root: "{root}"});</script>
</body></html>
"""
