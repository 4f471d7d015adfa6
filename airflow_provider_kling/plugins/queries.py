"""The Kling videos view's data: the ledger's entries, read from the metadata database and paged.

The entries (:mod:`airflow_provider_kling.tasks.ledger`) are joined to their task instances,
filtered, paged and added up.

Filtering, ordering, counting and paging run in the database on indexed columns (the XCom key,
the task instance, the entry's time), so a page costs the same with 10,000 requests as with 10;
only the page's own entries, and the range's costs for the totals, are decoded here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from sqlalchemy import Select, and_, false, or_, select
from sqlalchemy.orm import aliased

from airflow_provider_kling.api.events import EVENT_STATUSES, WAIT_END_STATUSES
from airflow_provider_kling.api.records import FAILED_STATUSES
from airflow_provider_kling.api.review import REVIEW_KEY
from airflow_provider_kling.plugins import takes
from airflow_provider_kling.tasks.ledger import REQUEST_KEY, STATUS_KEY

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The largest page a client may ask for.
MAX_PAGE = 200
#: What a card says before a task saw the request end, from the submitting task instance.
PENDING_STATUSES = frozenset({"running", "submitted"})
#: Every status a card shows and the filter offers (``static/index.html`` keeps a copy, checked by
#: tests/unit/test_ui_app.py).
VIEW_STATUSES = EVENT_STATUSES | PENDING_STATUSES
#: Statuses the totals count as failed; GMI's ``cancelled`` is counted apart.
COUNTED_AS_FAILED = (FAILED_STATUSES - {"cancelled"}) | WAIT_END_STATUSES
# Task instance states that say how a request without a status entry stands.
_FAILED_STATES = frozenset({"failed", "upstream_failed"})
_ACTIVE_STATES = frozenset({"running", "deferred", "queued", "scheduled", "up_for_reschedule"})


@dataclass(frozen=True)
class Filters:
    """
    What the view shows: always only the DAGs the caller may read, narrowed by the rest.

    :param readable: the DAG ids the caller may read (from the auth manager).
    :param dag_id: one DAG.
    :param run_id: one DAG run (with ``dag_id``).
    :param task_id: one task (with ``dag_id``).
    :param map_index: one mapped task instance.
    :param request_id: one request.
    :param states: states of the submitting task instance (``success``, ``failed``, ...).
    :param statuses: the request's status as the cards show it: GMI's (``success``,
        ``failed``, ``cancelled``), ``timeout`` or ``error`` when a task recorded one, else
        ``running`` or ``submitted`` (or ``failed``) from the submitting task instance.
    :param since: entries made at or after this time.
    :param until: entries made before this time.
    """

    readable: Collection[str]
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    request_id: str | None = None
    states: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        query = query.where(XComModel.key == REQUEST_KEY, XComModel.dag_id.in_(sorted(self.readable)))
        for column, value in (
            (XComModel.dag_id, self.dag_id),
            (XComModel.run_id, self.run_id),
            (XComModel.task_id, self.task_id),
            (XComModel.map_index, self.map_index),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.request_id:
            query = query.where(_field("request_id").as_string() == self.request_id)
        if self.states:
            query = query.where(TaskInstance.state.in_(self.states))
        if self.statuses:
            query = query.where(_status_is(self.statuses))
        if self.since is not None:
            query = query.where(XComModel.timestamp >= self.since)
        if self.until is not None:
            query = query.where(XComModel.timestamp < self.until)
        return query


@dataclass
class Video:
    """One request, as one card of the view."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    ti_state: str | None
    try_number: int
    recorded_at: datetime
    request: dict[str, Any]
    status_entry: dict[str, Any] = field(default_factory=dict)
    #: A review loop's take: its number, and the video (loop) it is a take of.
    take: int | None = None
    video: str | None = None

    @property
    def request_id(self) -> str:
        return str(self.request.get("request_id") or "")

    @property
    def status(self) -> str:
        """GMI's status when a task saw the request end, else what the task instance says."""
        status = self.status_entry.get("status")
        if isinstance(status, str) and status:
            return status
        if self.ti_state in _FAILED_STATES:
            return "failed"
        return "running" if self.ti_state in _ACTIVE_STATES else "submitted"

    @property
    def cost(self) -> float:
        value = self.request.get("estimated_cost_usd")
        return float(value) if isinstance(value, int | float) else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
            "ti_state": self.ti_state,
            "try_number": self.try_number,
            "recorded_at": self.recorded_at.isoformat(),
            "request_id": self.request_id,
            "model": self.request.get("model"),
            "prompt": self.request.get("prompt"),
            "duration": self.request.get("duration"),
            "resolution": self.request.get("resolution"),
            "estimated_cost_usd": self.request.get("estimated_cost_usd"),
            "status": self.status,
            "error": self.status_entry.get("error"),
            "media_urls": list(self.status_entry.get("media_urls") or []),
            "thumbnail_url": self.status_entry.get("thumbnail_url"),
            "uris": list(self.status_entry.get("uris") or []),
            # A reviewed take's review: its take number, decision, reviewer and notes.
            "review": self.status_entry.get("review"),
            "take": self.take,
            "video": self.video,
        }


@dataclass
class Page:
    """
    One page of videos and how many match in all. A reviewed video's takes are one video
    (:mod:`~airflow_provider_kling.plugins.takes`): ``videos`` has each take, a video's
    together, and ``groups`` sums up each reviewed video.
    """

    total: int
    offset: int
    limit: int
    videos: list[Video]
    groups: list[dict[str, Any]] = field(default_factory=list)


def _status_is(statuses: Collection[str]) -> Any:
    """Whether a request's status, as :attr:`Video.status` derives it, is one of ``statuses``."""
    entry = aliased(XComModel)
    has_status = (
        select(entry.dag_run_id)
        .where(
            entry.key == STATUS_KEY,
            entry.dag_run_id == XComModel.dag_run_id,
            entry.value["request_id"].as_string() == _field("request_id").as_string(),
        )
        .correlate(XComModel)
    )
    state = TaskInstance.state
    by_state = {
        "failed": state.in_(sorted(_FAILED_STATES)),
        "running": state.in_(sorted(_ACTIVE_STATES)),
        "submitted": or_(state.is_(None), state.not_in(sorted(_FAILED_STATES | _ACTIVE_STATES))),
    }
    no_status = and_(~has_status.exists(), or_(false(), *(by_state[s] for s in statuses if s in by_state)))
    gmi = [status for status in statuses if status not in PENDING_STATUSES]
    said = has_status.where(entry.value["status"].as_string().in_(gmi)).exists()
    return or_(said, no_status)


def _field(name: str) -> Any:
    """One key of a ledger entry, extracted by the database (XCom values are a JSON column)."""
    return XComModel.value[name]


def decode(value: Any) -> dict[str, Any]:
    """An XCom value as stored (JSON text, or already decoded), as a dict; ``{}`` if it is not one."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _request_entries(*, takes_too: bool = True) -> Select[Any]:
    ti = TaskInstance
    query = select(
        XComModel.dag_run_id,
        XComModel.dag_id,
        XComModel.run_id,
        XComModel.task_id,
        XComModel.map_index,
        XComModel.timestamp,
        XComModel.value,
        ti.state,
        ti.try_number,
    ).join(
        ti,
        and_(
            ti.dag_id == XComModel.dag_id,
            ti.run_id == XComModel.run_id,
            ti.task_id == XComModel.task_id,
            ti.map_index == XComModel.map_index,
        ),
    )
    # The totals count requests, not videos: they skip the join.
    return takes.with_takes(query) if takes_too else query


def status_entries(session: Session, dag_runs: Iterable[int]) -> dict[tuple[int, str], dict[str, Any]]:
    """
    How each request of these DAG runs ended, by ``(dag_run_id, request_id)``.

    Several tasks may report on one request (the sensor its status, a download task its copies):
    the latest status wins and the copies add up. A reviewed take also gets its review.
    """
    merged: dict[tuple[int, str], dict[str, Any]] = {}
    ids = sorted(set(dag_runs))
    if not ids:
        return merged
    rows = session.execute(
        select(XComModel.dag_run_id, XComModel.key, XComModel.value)
        .where(XComModel.key.in_([STATUS_KEY, REVIEW_KEY]), XComModel.dag_run_id.in_(ids))
        .order_by(XComModel.timestamp)
    )
    for dag_run_id, xcom_key, value in rows:
        entry = decode(value)
        request_id = entry.get("request_id")
        if not isinstance(request_id, str):
            continue
        known = merged.setdefault((dag_run_id, request_id), {"uris": [], "media_urls": []})
        if xcom_key == REVIEW_KEY:
            known["review"] = entry
            continue
        for key in ("status", "error", "thumbnail_url"):
            if entry.get(key) is not None or key == "error":
                known[key] = entry.get(key)
        for key in ("uris", "media_urls"):
            known[key] += [v for v in entry.get(key) or [] if v not in known[key]]
    return merged


def _videos(session: Session, rows: Iterable[Any]) -> list[Video]:
    rows = list(rows)
    ended = status_entries(session, (row.dag_run_id for row in rows))
    videos = []
    for row in rows:
        request = decode(row.value)
        videos.append(
            Video(
                dag_id=row.dag_id,
                run_id=row.run_id,
                task_id=row.task_id,
                map_index=row.map_index,
                ti_state=str(row.state) if row.state is not None else None,
                try_number=int(row.try_number or 0),
                recorded_at=row.timestamp,
                request=request,
                status_entry=ended.get((row.dag_run_id, str(request.get("request_id"))), {}),
                take=row.take,
                video=row.video,
            )
        )
    return videos


def page(session: Session, filters: Filters, *, offset: int = 0, limit: int = 24) -> Page:
    """The videos with the newest matching request first, ``limit`` of them from ``offset``."""
    offset = max(0, offset)
    limit = min(max(1, limit), MAX_PAGE)
    if not filters.readable:
        return Page(total=0, offset=offset, limit=limit, videos=[])
    total, entries, chosen = takes.page_of_videos(
        session, filters.apply(_request_entries()), offset=offset, limit=limit
    )
    rows = takes.in_page_order(session.execute(entries).all(), chosen) if entries is not None else []
    videos = _videos(session, rows)
    return Page(total, offset, limit, videos, takes.summaries(videos))


def totals(session: Session, filters: Filters) -> dict[str, Any]:
    """
    Spend and statuses of every matching request: in all, per day (UTC) and per DAG.

    Spend is the sum of the estimated costs the tasks recorded before submitting. The database
    extracts the few fields needed, so no entry is decoded here.
    """
    result: dict[str, Any] = {"count": 0, "spend_usd": 0.0, "failed": 0, "cancelled": 0}
    per_day: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    per_dag: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    if filters.readable:
        query = filters.apply(_request_entries(takes_too=False)).with_only_columns(
            XComModel.dag_run_id,
            XComModel.dag_id,
            XComModel.timestamp,
            _field("estimated_cost_usd").as_float(),
            _field("request_id").as_string(),
            TaskInstance.state,
        )
        rows = session.execute(query).all()
        ended = latest_statuses(session, query.with_only_columns(XComModel.dag_run_id).distinct())
        for dag_run_id, dag_id, recorded_at, cost, request_id, state in rows:
            cost = float(cost or 0.0)
            for bucket in (per_day[_utc(recorded_at).date().isoformat()], per_dag[dag_id]):
                bucket[0] += cost
                bucket[1] += 1
            result["count"] += 1
            result["spend_usd"] += cost
            status = ended.get((dag_run_id, request_id)) or ("failed" if state in _FAILED_STATES else "")
            result["failed"] += status in COUNTED_AS_FAILED
            result["cancelled"] += status == "cancelled"
    result["spend_usd"] = round(result["spend_usd"], 4)
    result["per_day"] = [_bucket("day", k, v) for k, v in sorted(per_day.items())]
    result["per_dag"] = [_bucket("dag_id", k, v) for k, v in sorted(per_dag.items(), key=lambda i: -i[1][0])]
    return result


def latest_statuses(session: Session, dag_runs: Select[Any]) -> dict[tuple[int, str], str]:
    """The last status any task recorded for each request of these DAG runs."""
    query = (
        select(XComModel.dag_run_id, _field("request_id").as_string(), _field("status").as_string())
        .where(XComModel.key == STATUS_KEY, XComModel.dag_run_id.in_(dag_runs))
        .order_by(XComModel.timestamp)
    )
    return {(run, request_id): status for run, request_id, status in session.execute(query) if status}


def dag_ids(session: Session, readable: Collection[str]) -> list[str]:
    """The readable DAGs that recorded at least one request, for the DAG filter."""
    if not readable:
        return []
    query = (
        select(XComModel.dag_id)
        .where(XComModel.key == REQUEST_KEY, XComModel.dag_id.in_(sorted(readable)))
        .distinct()
        .order_by(XComModel.dag_id)
    )
    return [str(dag_id) for dag_id in session.scalars(query)]


def stored_uri(session: Session, dag_id: str, run_id: str, request_id: str, index: int) -> str | None:
    """The ``index``-th copy a task of this DAG run recorded for the request, or ``None``."""
    query = (
        select(XComModel.value)
        .where(XComModel.key == STATUS_KEY, XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        .order_by(XComModel.timestamp)
    )
    uris: list[str] = []
    for value in session.scalars(query):
        entry = decode(value)
        if entry.get("request_id") == request_id:
            uris += [str(u) for u in entry.get("uris") or [] if str(u) not in uris]
    return uris[index] if 0 <= index < len(uris) else None


def _bucket(name: str, key: str, value: list[float]) -> Mapping[str, Any]:
    return {name: key, "spend_usd": round(value[0], 4), "count": int(value[1])}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


__all__ = ["MAX_PAGE", "Filters", "Page", "Video", "dag_ids", "page", "stored_uri", "totals"]
