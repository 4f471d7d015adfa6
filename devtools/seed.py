"""Kling videos ledger entries in a metadata database, without running the tasks: for the view's tests and
benchmarks, or to see the Kling videos page full before a real batch has run.

Rows are written as Airflow writes them (a DAG run, a task instance, the XComs of
:mod:`airflow_provider_kling.tasks.ledger`), with one multi-row insert per table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_kling.api.review import REVIEW_KEY, TAKE_KEY
from airflow_provider_kling.tasks.ledger import REQUEST_KEY, STATUS_KEY, RequestEntry, failure_entry

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session


@dataclass
class FakeRequest:
    """
    One request as its tasks would have recorded it.

    :param dag_id: the DAG.
    :param run_id: its run (one DAG run row per distinct run id).
    :param task_id: the submitting task.
    :param map_index: its map index (``-1``: not mapped).
    :param state: the submitting task instance's state.
    :param status: the status a task's entry says (``None``: none yet); ``success`` gets a video.
    :param cost: the estimated cost recorded at submit.
    :param at: when it was submitted.
    :param uris: copies in the user's storage, recorded by a ``download`` task of the same run.
    :param error: the failure text of a failed or cancelled request.
    :param take: a review loop's take number (with ``video``, the loop's first take task), and
        ``review``, the decision, reviewer and notes its review recorded.
    """

    dag_id: str
    run_id: str
    task_id: str = "submit"
    map_index: int = -1
    state: str = "success"
    status: str | None = "success"
    cost: float | None = 0.56
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    uris: Sequence[str] = ()
    error: str | None = None
    prompt: str = "A slow dolly-in"
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    take: int | None = None
    video: str = "review.take_1"
    review: dict[str, Any] | None = None

    def request(self) -> dict[str, Any]:
        return RequestEntry(
            request_id=self.request_id,
            model="kling-3.0-turbo-i2v",
            prompt=self.prompt,
            duration="5",
            resolution="720p",
            estimated_cost_usd=self.cost,
            submitted_at=self.at.timestamp(),
        ).to_xcom()

    def status_entry(self) -> dict[str, Any] | None:
        if self.status is None:
            return None
        if self.status != "success":
            return failure_entry(self.request_id, self.status, self.error)
        url = f"https://media.example/{self.request_id}/sample_0.mp4"
        return {
            "request_id": self.request_id,
            "status": "success",
            "error": None,
            "media_urls": [url],
            "thumbnail_url": f"https://media.example/{self.request_id}/thumb.jpg",
            "uris": [],
        }


def create_metadata_tables(engine: Engine) -> None:
    """Create Airflow's tables in an empty database (what ``airflow db migrate`` ends with)."""
    from airflow.models import import_all_models
    from airflow.models.base import Base

    import_all_models()
    Base.metadata.create_all(engine)


def insert(session: Session, requests: Iterable[FakeRequest]) -> list[FakeRequest]:
    """Write the requests' DAG runs, task instances and XCom entries; returns them."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import func, insert, select

    requests = list(requests)
    # Airflow 3.3 keeps task instance ids as a UUID column, 3.1 as text.
    as_uuid = getattr(TaskInstance.__table__.c.id.type, "as_uuid", False)

    def ti_id() -> Any:
        return uuid.uuid4() if as_uuid else str(uuid.uuid4())

    next_id = (session.scalar(select(func.max(DagRun.id))) or 0) + 1
    runs: dict[tuple[str, str], int] = {}
    run_rows, ti_rows, xcom_rows = [], [], []
    for req in requests:
        key = (req.dag_id, req.run_id)
        if key not in runs:
            runs[key] = next_id
            run_rows.append(
                {
                    "id": next_id,
                    "dag_id": req.dag_id,
                    "run_id": req.run_id,
                    "run_type": "manual",
                    "run_after": req.at,
                    "state": "success",
                }
            )
            next_id += 1
        ti_rows.append(
            {
                "id": ti_id(),
                "dag_id": req.dag_id,
                "run_id": req.run_id,
                "task_id": req.task_id,
                "map_index": req.map_index,
                "state": req.state,
                "try_number": 1,
                "pool": "default_pool",
            }
        )

        def xcom(task_id: str, key: str, value: Any, at: datetime, req: FakeRequest = req) -> dict[str, Any]:
            return {
                "dag_run_id": runs[(req.dag_id, req.run_id)],
                "dag_id": req.dag_id,
                "run_id": req.run_id,
                "task_id": task_id,
                "map_index": req.map_index,
                "key": key,
                "value": value,  # a JSON column: stored as JSON, as the execution API stores it
                "timestamp": at,
            }

        xcom_rows.append(xcom(req.task_id, REQUEST_KEY, req.request(), req.at))
        if req.take is not None:
            take = {"take": req.take, "base_prompt": req.prompt, "video": req.video}
            xcom_rows.append(xcom(req.task_id, TAKE_KEY, take, req.at))
        if req.review is not None:
            # The review is a task of its own: ``review_<n>`` beside ``take_<n>``.
            review_task = req.task_id.replace("take_", "review_")
            ti_rows.append({**ti_rows[-1], "id": ti_id(), "task_id": review_task})
            record = {"take": req.take, "request_id": req.request_id, **req.review}
            xcom_rows.append(xcom(review_task, REVIEW_KEY, record, req.at + timedelta(seconds=45)))
        status_entry = req.status_entry()
        if status_entry is not None:
            xcom_rows.append(xcom(req.task_id, STATUS_KEY, status_entry, req.at + timedelta(seconds=30)))
        if req.uris:
            download = f"{req.task_id}_download"
            stored = {
                **(status_entry or {}),
                "request_id": req.request_id,
                "status": "success",
                "uris": [*req.uris],
            }
            ti_rows.append({**ti_rows[-1], "id": ti_id(), "task_id": download})
            xcom_rows.append(xcom(download, STATUS_KEY, stored, req.at + timedelta(seconds=60)))
    for model, rows in ((DagRun, run_rows), (TaskInstance, ti_rows), (XComModel, xcom_rows)):
        for start in range(0, len(rows), 500):
            session.execute(insert(model.__table__), rows[start : start + 500])
    session.commit()
    return requests


__all__ = ["FakeRequest", "create_metadata_tables", "insert"]
