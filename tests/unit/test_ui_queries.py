"""The Kling videos view's query layer on a real (SQLite) Airflow metadata schema."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from airflow_provider_kling.plugins import queries
from airflow_provider_kling.plugins.queries import Filters
from devtools.seed import FakeRequest, insert

DAY = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def session(metadata_engine):
    with Session(metadata_engine) as session:
        yield session


def readable(*dag_ids: str) -> Filters:
    return Filters(readable=set(dag_ids))


def test_a_page_shows_each_request_with_its_outcome_newest_first(session):
    old, new = insert(
        session,
        [
            FakeRequest("nightly", "run_1", at=DAY, prompt="old"),
            FakeRequest("nightly", "run_2", at=DAY + timedelta(hours=1), prompt="new"),
        ],
    )
    found = queries.page(session, readable("nightly"))
    assert found.total == 2
    assert [v.request_id for v in found.videos] == [new.request_id, old.request_id]
    shown = found.videos[0].to_json()
    assert shown["prompt"] == "new"
    assert shown["status"] == "success"
    assert shown["estimated_cost_usd"] == 0.56
    assert shown["media_urls"] == [f"https://media.example/{new.request_id}/sample_0.mp4"]
    assert shown["thumbnail_url"].endswith("thumb.jpg")
    assert (shown["dag_id"], shown["run_id"], shown["task_id"], shown["map_index"]) == (
        "nightly",
        "run_2",
        "submit",
        -1,
    )


def test_a_failed_request_shows_gmi_error_and_a_download_adds_the_stored_copy(session):
    failed, stored = insert(
        session,
        [
            FakeRequest("nightly", "run_1", state="failed", status="failed", error="content policy"),
            FakeRequest("nightly", "run_1", task_id="other", uris=["/data/videos/a.mp4"]),
        ],
    )
    by_id = {v.request_id: v.to_json() for v in queries.page(session, readable("nightly")).videos}
    assert by_id[failed.request_id]["status"] == "failed"
    assert by_id[failed.request_id]["error"] == "content policy"
    assert by_id[failed.request_id]["media_urls"] == []
    assert by_id[stored.request_id]["uris"] == ["/data/videos/a.mp4"]
    assert by_id[stored.request_id]["media_urls"]  # GMI's URL stays, as the player's fallback
    assert queries.stored_uri(session, "nightly", "run_1", stored.request_id, 0) == "/data/videos/a.mp4"
    assert queries.stored_uri(session, "nightly", "run_1", stored.request_id, 1) is None
    assert queries.stored_uri(session, "nightly", "run_1", failed.request_id, 0) is None


def test_a_request_without_an_outcome_takes_its_task_instance_state(session):
    running, submitted = insert(
        session,
        [
            FakeRequest("nightly", "r", task_id="a", state="deferred", status=None),
            FakeRequest("nightly", "r", task_id="b", state="success", status=None),
        ],
    )
    by_id = {v.request_id: v.status for v in queries.page(session, readable("nightly")).videos}
    assert by_id == {running.request_id: "running", submitted.request_id: "submitted"}


def test_filters_narrow_by_dag_run_task_state_date_and_request(session):
    reqs = insert(
        session,
        [
            FakeRequest("nightly", "run_1", at=DAY),
            FakeRequest("nightly", "run_1", task_id="mapped", map_index=3, at=DAY),
            FakeRequest("nightly", "run_2", at=DAY + timedelta(days=1), state="failed", status="failed"),
            FakeRequest("weekly", "run_1", at=DAY + timedelta(days=2)),
        ],
    )
    everything = {"nightly", "weekly"}

    def ids(**kw: object) -> set[str]:
        return {v.request_id for v in queries.page(session, Filters(readable=everything, **kw)).videos}

    assert ids(dag_id="weekly") == {reqs[3].request_id}
    assert ids(dag_id="nightly", run_id="run_1") == {reqs[0].request_id, reqs[1].request_id}
    assert ids(dag_id="nightly", task_id="mapped", map_index=3) == {reqs[1].request_id}
    assert ids(states=("failed",)) == {reqs[2].request_id}
    assert ids(since=DAY + timedelta(days=1)) == {reqs[2].request_id, reqs[3].request_id}
    assert ids(until=DAY + timedelta(hours=1)) == {reqs[0].request_id, reqs[1].request_id}
    assert ids(request_id=reqs[2].request_id) == {reqs[2].request_id}


def test_the_status_filter_matches_the_status_each_card_shows(session):
    reqs = insert(
        session,
        [
            FakeRequest("d", "r1", task_id="ok"),
            FakeRequest("d", "r1", task_id="gmi_failed", state="success", status="failed"),
            FakeRequest("d", "r2", task_id="task_failed", state="failed", status=None),
            FakeRequest("d", "r2", task_id="cancelled", status="cancelled"),
            FakeRequest("d", "r3", task_id="deferred", state="deferred", status=None),
            FakeRequest("d", "r3", task_id="handed_on", state="success", status=None),
            FakeRequest("d", "r3", task_id="timed_out", state="failed", status="timeout"),
        ],
    )
    shown = {v.task_id: v.status for v in queries.page(session, readable("d")).videos}

    def tasks(*statuses: str) -> set[str]:
        found = queries.page(session, Filters(readable={"d"}, statuses=statuses)).videos
        return {v.task_id for v in found}

    for status in ("success", "failed", "cancelled", "timeout", "running", "submitted"):
        assert tasks(status) == {task for task, s in shown.items() if s == status}, status
    assert tasks("failed") == {"gmi_failed", "task_failed"}
    assert tasks("running", "submitted") == {"deferred", "handed_on"}
    assert tasks("error") == set()
    assert len(reqs) == 7


def test_dags_the_caller_may_not_read_are_invisible_everywhere(session):
    public, secret = insert(
        session,
        [FakeRequest("public", "r", cost=0.56), FakeRequest("secret", "r", cost=2.1, uris=["/s/v.mp4"])],
    )
    view = readable("public")
    assert [v.request_id for v in queries.page(session, view).videos] == [public.request_id]
    assert queries.page(session, Filters(readable={"public"}, dag_id="secret")).total == 0
    assert queries.page(session, Filters(readable={"public"}, request_id=secret.request_id)).total == 0
    assert queries.totals(session, view)["spend_usd"] == pytest.approx(0.56)
    assert queries.dag_ids(session, {"public"}) == ["public"]
    assert queries.page(session, readable()).total == 0
    assert queries.totals(session, readable())["count"] == 0


def test_paging_walks_every_request_once_in_order(session):
    reqs = insert(
        session, [FakeRequest("batch", "r", task_id="submit", map_index=i, at=DAY) for i in range(25)]
    )
    seen: list[str] = []
    for offset in range(0, 30, 10):
        found = queries.page(session, readable("batch"), offset=offset, limit=10)
        assert found.total == 25
        seen += [v.request_id for v in found.videos]
    assert sorted(seen) == sorted(r.request_id for r in reqs)
    assert len(seen) == 25
    assert queries.page(session, readable("batch"), limit=10_000).limit == queries.MAX_PAGE


def test_totals_add_the_recorded_costs_per_day_and_per_dag_and_count_failures(session):
    insert(
        session,
        [
            FakeRequest("a", "r1", cost=0.56, at=DAY),
            FakeRequest("a", "r1", task_id="t2", cost=1.4, at=DAY, status="failed", state="failed"),
            FakeRequest("a", "r2", cost=0.7, at=DAY + timedelta(days=1), status="cancelled"),
            FakeRequest("b", "r1", cost=0.56, at=DAY + timedelta(days=1), status="timeout"),
            FakeRequest("b", "r2", cost=None, at=DAY + timedelta(days=1)),  # a model without a price
        ],
    )
    totals = queries.totals(session, readable("a", "b"))
    assert totals["count"] == 5
    assert totals["spend_usd"] == pytest.approx(0.56 + 1.4 + 0.7 + 0.56)
    assert (totals["failed"], totals["cancelled"]) == (2, 1)
    assert totals["per_day"] == [
        {"day": "2026-11-30", "spend_usd": pytest.approx(1.96), "count": 2},
        {"day": "2026-12-01", "spend_usd": pytest.approx(1.26), "count": 3},
    ]
    assert totals["per_dag"] == [
        {"dag_id": "a", "spend_usd": pytest.approx(2.66), "count": 3},
        {"dag_id": "b", "spend_usd": pytest.approx(0.56), "count": 2},
    ]
    one_day = queries.totals(session, Filters(readable={"a", "b"}, since=DAY + timedelta(hours=13)))
    assert one_day["count"] == 3


def test_a_record_that_is_not_json_is_shown_empty_not_an_error():
    assert queries.decode("not json") == {}
    assert queries.decode('{"a": 1}') == {"a": 1}
    assert queries.decode({"a": 1}) == {"a": 1}
    assert queries.decode("[1, 2]") == {}


def test_a_task_records_its_copies_where_the_api_server_can_find_them(tmp_path, monkeypatch):
    from airflow_provider_kling.tasks.ledger import success_entry

    monkeypatch.chdir(tmp_path)
    result = {
        "request_id": "r1",
        "status": "success",
        "media_urls": ["https://media.example/r1.mp4"],
        "outcome": {"thumbnail_image_url": "https://media.example/r1.jpg"},
        "files": [{"uri": "out/r1_0.mp4"}, {"uri": "s3://bucket/r1_1.mp4"}],
    }
    record = success_entry(result)
    assert record["uris"] == [str(tmp_path / "out" / "r1_0.mp4"), "s3://bucket/r1_1.mp4"]
    assert record["thumbnail_url"] == "https://media.example/r1.jpg"
    assert (record["status"], record["error"]) == ("success", None)


def test_a_reviewed_video_shows_its_takes_together_with_the_approved_one_and_the_notes(session):
    def review(decision: str, who: str, notes: str | None = None) -> dict[str, object]:
        return {"decision": decision, "reviewer": who, "notes": notes, "timed_out": False}

    minute = timedelta(minutes=1)
    first, other, second, plain = insert(
        session,
        [
            FakeRequest(
                "campaign",
                "r",
                "review.take_1",
                0,
                at=DAY,
                take=1,
                review=review("Regenerate", "ana", "slower"),
            ),
            FakeRequest(
                "campaign", "r", "review.take_1", 1, at=DAY + minute, take=1, review=review("Reject", "ana")
            ),
            FakeRequest(
                "campaign",
                "r",
                "review.take_2",
                0,
                at=DAY + 10 * minute,
                take=2,
                review=review("Approve", "ben"),
            ),
            FakeRequest("campaign", "r", "images", at=DAY - 60 * minute),
        ],
    )
    found = queries.page(session, readable("campaign"))
    # Three videos: the newest take's video first, its takes together and in take order.
    assert found.total == 3
    assert [v.request_id for v in found.videos] == [
        first.request_id,
        second.request_id,
        other.request_id,
        plain.request_id,
    ]
    assert [(v.to_json()["take"], v.to_json()["video"]) for v in found.videos[:2]] == [
        (1, "review.take_1"),
        (2, "review.take_1"),
    ]
    assert found.videos[3].to_json()["take"] is None
    by_index = {g["map_index"]: g for g in found.groups}
    assert len(found.groups) == 2
    assert by_index[0]["request_ids"] == [first.request_id, second.request_id]
    assert (by_index[0]["approved_take"], by_index[0]["approved_by"]) == (2, "ben")
    assert by_index[0]["approved_request_id"] == second.request_id
    assert [(h["take"], h["decision"], h["notes"]) for h in by_index[0]["notes_history"]] == [
        (1, "Regenerate", "slower"),
        (2, "Approve", None),
    ]
    assert by_index[1]["approved_take"] is None
    assert by_index[1]["notes_history"][0]["decision"] == "Reject"
    # A page holds whole videos: one video per page here is both of its takes.
    assert [v.request_id for v in queries.page(session, readable("campaign"), limit=1).videos] == [
        first.request_id,
        second.request_id,
    ]
    assert (
        queries.page(session, readable("campaign"), offset=1, limit=1).videos[0].request_id
        == other.request_id
    )
    # The totals count every take, each paid.
    spent = queries.totals(session, readable("campaign"))
    assert (spent["count"], spent["spend_usd"]) == (4, 2.24)
