"""A reviewed video in a real deployment, in headless Chromium: Required Actions shows take 1 with a
link that plays it in the Kling videos view; Regenerate with a note makes take 2 (the simulator's
second request carries the note); Approve publishes take 2; a user not assigned cannot answer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_kling.testing import KlingSimulator
from devtools.deployment import AirflowStack

from .conftest import ROOT, AirflowAPI, browse, login, play, states

pytestmark = pytest.mark.timeout(1800)
DAG = "kling_reviewed_campaign"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, simulator: KlingSimulator) -> Iterator[AirflowStack]:
    deployment = AirflowStack(
        home=tmp_path_factory.mktemp("airflow_review"),
        dags_folder=ROOT / "example_dags",
        kling_base_url=simulator.base_url,
        kling_api_key=simulator.api_key,
        # Only admin reviews; viewer may read the DAG but not answer.
        extra_env={
            "KLING_REVIEWERS": "admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        },
    )
    try:
        deployment.start(timeout=300)
        yield deployment
    finally:
        deployment.stop()


def hitl_path(api: AirflowAPI, run_id: str, task_id: str) -> str:
    return f"/api/v2/dags/{DAG}/dagRuns/{api.q(run_id)}/taskInstances/{task_id}/0/hitlDetails"


def required_actions(page: Any, stack: AirflowStack, api: AirflowAPI, run_id: str, task_id: str) -> None:
    deadline = time.monotonic() + 600
    # The review's task instance exists only once the budget has expanded the mapped group.
    while states(api, DAG, run_id).get((task_id, 0)) != "awaiting_input":
        assert time.monotonic() < deadline, f"{task_id} never waited for a review"
        time.sleep(1)
    # Answered at once: Airflow 3.3.2's scheduler may fail a review answered before it has seen
    # the parked process exit; the review's retry then takes the answer given (review_wait.py).
    # The UI's path of a mapped task instance, as its own Required Actions list links to it.
    page.goto(f"{stack.base_url}/dags/{DAG}/runs/{api.q(run_id)}/tasks/{task_id}/mapped/0/required_actions")


def test_regenerate_with_a_note_then_approve_publishes_take_2(browser, stack, api, simulator):
    before = len(simulator.requests)
    run_id = api.trigger(DAG, {"count": 1})
    context, page = browse(browser, stack, login(stack, "admin"))
    try:
        required_actions(page, stack, api, run_id, "review.review_1")
        page.get_by_text("Take 1 of 3").first.wait_for()
        link = page.get_by_role("link", name="Play take 1 in the Kling videos view")
        href = str(link.get_attribute("href"))
        take_1 = simulator.requests[before].request_id
        assert f"request_id={take_1}" in href

        # A user not assigned gets Airflow's refusal.
        response = httpx.patch(
            f"{stack.base_url}{hitl_path(api, run_id, 'review.review_1')}",
            json={"chosen_options": ["Approve"], "params_input": {"notes": "", "new_prompt": ""}},
            headers={"Authorization": f"Bearer {login(stack, 'viewer')}"},
        )
        assert response.status_code == 403, response.text

        page.goto(f"{stack.base_url}{href}" if href.startswith("/") else href)
        frame = page.frame_locator("iframe").first if page.locator("iframe").count() else page
        card = frame.locator(f"article[data-request-id='{take_1}']")
        assert play(card.locator("video"))["currentTime"] > 0.3

        required_actions(page, stack, api, run_id, "review.review_1")
        # Airflow's form labels the field for an id its input does not carry: find it by name.
        page.locator("input[name='element_notes']").fill("slower camera, keep the logo sharp")
        page.get_by_role("button", name="Regenerate").click()

        required_actions(page, stack, api, run_id, "review.review_2")
        page.get_by_text("Take 2 of 3").first.wait_for()
        assert len(simulator.requests) - before == 2
        take_2 = simulator.requests[before + 1]
        assert "Reviewer notes: slower camera, keep the logo sharp" in str(take_2.payload["prompt"])
        # Wait for the page's answer to land before the browser closes, or the click is lost.
        with page.expect_response(lambda r: "hitlDetails" in r.url and r.request.method == "PATCH") as sent:
            page.get_by_role("button", name="Approve").click()
        assert sent.value.ok, sent.value.text()
    finally:
        context.close()

    assert api.wait_for_run(DAG, run_id)["state"] == "success", api.failure_report(DAG, run_id)
    published = api.xcom(DAG, run_id, "review.publish", map_index=0)
    assert take_2.request_id in json.dumps(published)
    assert len(simulator.requests) - before == 2
