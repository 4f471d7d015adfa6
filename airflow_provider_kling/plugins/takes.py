"""A reviewed video's takes, together in the Kling videos view.

Each take of a review loop (:mod:`airflow_provider_kling.operators.review`) is a request of its
own task, so the ledger has one entry per take. Each take also records its loop (XCom
``kling_take``: its number, and ``video``, the loop's first take task), so the view pages by
*video*: the takes of one loop in one DAG run and map index are one video, shown together in take
order with the approved one, its reviewer and the notes; any other request is a video of its own.
The totals still count every take (:func:`~airflow_provider_kling.plugins.queries.totals`).

The grouping runs in the database like the rest of the paging: the take record is joined on the
XCom table's own key, so a page still costs the same however many requests there are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.models.xcom import XComModel
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import aliased

from airflow_provider_kling.api.review import TAKE_KEY, video_summary

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_provider_kling.plugins.queries import Video

#: The take record of a request entry's task instance, when it is a take of a review loop.
TAKE = aliased(XComModel, name="take_entry")


def _video_key() -> Any:
    # A request that is no take is a video of its own: a task instance records one request, so
    # its task id names it within its run and map index (and reads no JSON, which is the cost).
    return func.coalesce(TAKE.value["video"].as_string(), XComModel.task_id)


def with_takes(query: Select[Any]) -> Select[Any]:
    """
    ``query`` of request entries, with each entry's ``take`` number and ``video`` (``None`` if
    it is not a take) and ``video_key``, the video it shows in (its own task id if not a take).
    """
    return query.add_columns(
        TAKE.value["take"].as_integer().label("take"),
        TAKE.value["video"].as_string().label("video"),
        _video_key().label("video_key"),
    ).outerjoin(
        TAKE,
        and_(
            TAKE.dag_run_id == XComModel.dag_run_id,
            TAKE.task_id == XComModel.task_id,
            TAKE.map_index == XComModel.map_index,
            TAKE.key == TAKE_KEY,
        ),
    )


def page_of_videos(
    session: Session, query: Select[Any], *, offset: int, limit: int
) -> tuple[int, Select[Any] | None, list[tuple[int, int, str]]]:
    """
    How many videos ``query`` (request entries joined :func:`with_takes`) matches, the query of
    the entries of the ``limit`` videos from ``offset`` (newest take first), and those videos'
    keys in page order; ``None`` when the page is empty.
    """
    # Grouped over a subquery's columns, not the JSON expressions: a database that binds
    # parameters server-side cannot tell that two copies of an expression are the same.
    entries = query.with_only_columns(
        XComModel.dag_run_id, XComModel.map_index, _video_key().label("video_key"), XComModel.timestamp
    ).subquery()
    keys = (entries.c.dag_run_id, entries.c.map_index, entries.c.video_key)
    latest = func.max(entries.c.timestamp)
    groups = select(*keys).group_by(*keys)
    total = session.scalar(select(func.count()).select_from(groups.subquery())) or 0
    ordered = groups.order_by(latest.desc(), *keys).offset(offset).limit(limit)
    chosen = [(int(run), int(index), str(video)) for run, index, video in session.execute(ordered)]
    if not chosen:
        return int(total), None, []
    key = _video_key()
    in_page = or_(
        *(and_(XComModel.dag_run_id == r, XComModel.map_index == m, key == v) for r, m, v in chosen)
    )
    return int(total), query.where(in_page), chosen


def in_page_order(rows: Sequence[Any], chosen: Sequence[tuple[int, int, str]]) -> list[Any]:
    """The page's entries (rows of :func:`with_takes`), videos in ``chosen``'s order, takes in take order."""
    place = {key: n for n, key in enumerate(chosen)}

    def order(row: Any) -> tuple[int, int, Any]:
        return (
            place.get((row.dag_run_id, row.map_index, row.video_key), len(place)),
            row.take or 0,
            row.timestamp,
        )

    return sorted(rows, key=order)


def summaries(videos: Sequence[Video]) -> list[dict[str, Any]]:
    """One summary per reviewed video of the page: its takes, the approved one, by whom, the notes."""
    grouped: dict[tuple[str, str, int, str], list[Video]] = {}
    for video in videos:
        if video.video is not None:
            grouped.setdefault((video.dag_id, video.run_id, video.map_index, video.video), []).append(video)
    result = []
    for (dag_id, run_id, map_index, loop), takes in grouped.items():
        reviews = [
            t.status_entry["review"] for t in takes if isinstance(t.status_entry.get("review"), Mapping)
        ]
        approved = video_summary(reviews)
        approved_id = next((t.request_id for t in takes if t.take == approved["approved_take"]), None)
        result.append(
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "map_index": map_index,
                "video": loop,
                "request_ids": [t.request_id for t in takes],
                "takes": len(takes),
                "approved_request_id": approved_id,
                **approved,
            }
        )
    return result


__all__ = ["TAKE", "in_page_order", "page_of_videos", "summaries", "with_takes"]
