"""The Kling videos view in a real deployment: gallery, run tab, totals, login and DAG access.

This module runs its own deployment in Airflow's multi-team mode (3.2+), the way the simple
auth manager restricts a user to some DAGs: the example DAGs belong to no team, so every user
reads them; ``tests/e2e/dags_studio`` is the ``studio`` team's bundle, and the ``viewer`` user
is in no team, so may not read ``kling_studio_private``. (The shared deployment stays
single-team: multi-team mode changes other pages, such as the connection form.) Headless
Chromium as in ``test_ui.py``; ``make screenshots`` refreshes the docs' copies of the page
and the run tab.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_kling.testing import KlingSimulator
from devtools.deployment import AirflowStack

from .conftest import EXAMPLE, ROOT, STATIC, AirflowAPI, browse, login, play

pytestmark = pytest.mark.timeout(900)

VIEWER = "viewer"
PRIVATE_DAG = "kling_studio_private"
PIPELINE = "kling_product_pipeline"


def team_env() -> dict[str, str]:
    """Two bundles, the second owned by team ``studio``; an admin and a viewer in no team."""
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    bundles = [
        {"name": "dags-folder", "classpath": local, "kwargs": {"path": str(ROOT / "example_dags")}},
        {
            "name": "studio",
            "classpath": local,
            "kwargs": {"path": str(ROOT / "tests" / "e2e" / "dags_studio")},
            "team_name": "studio",
        },
    ]
    return {
        "AIRFLOW__CORE__MULTI_TEAM": "True",
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{VIEWER}:viewer",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, simulator: KlingSimulator) -> Iterator[AirflowStack]:
    deployment = AirflowStack(
        home=tmp_path_factory.mktemp("airflow_teams"),
        dags_folder=ROOT / "example_dags",
        kling_base_url=simulator.base_url,
        kling_api_key=simulator.api_key,
        extra_env=team_env(),
        # The bundle config names team "studio": it must exist before the DAG processor starts.
        prepare=[["teams", "sync"]],
    )
    try:
        deployment.start(timeout=300)
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def runs(api: AirflowAPI) -> dict[str, list[str]]:
    """Two finished runs of the example and one of the private DAG, started together."""
    wanted = {EXAMPLE: 2, PRIVATE_DAG: 1}
    started = {dag: [api.trigger(dag) for _ in range(count)] for dag, count in wanted.items()}
    for dag, run_ids in started.items():
        for run_id in run_ids:
            state = api.wait_for_run(dag, run_id)["state"]
            assert state == "success", api.failure_report(dag, run_id)
    return started


def submit_xcom(api: AirflowAPI, dag_id: str, run_id: str, key: str) -> Any:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{api.q(run_id)}/taskInstances/submit/xcomEntries/{key}"
    value = api.get(path)["value"]
    return json.loads(value) if isinstance(value, str) and key != "request_id" else value


def request_of(api: AirflowAPI, dag_id: str, run_id: str) -> str:
    return str(submit_xcom(api, dag_id, run_id, "request_id"))


def cost_of(api: AirflowAPI, dag_id: str, run_id: str) -> float:
    """What the submit task pushed as its estimate before paying."""
    return float(submit_xcom(api, dag_id, run_id, "estimated_cost_usd"))


def test_without_a_login_every_route_answers_401(stack, runs):
    for path in ("/kling/", "/kling/api/videos", "/kling/api/totals", "/kling/api/dags"):
        assert httpx.get(f"{stack.base_url}{path}").status_code == 401, path
    bad = httpx.get(f"{stack.base_url}/kling/api/videos", cookies={"_token": "not-a-jwt"})
    assert bad.status_code in (401, 403)


def test_the_gallery_shows_the_example_runs_video_and_it_plays(browser, stack, api, runs, simulator):
    from playwright.sync_api import expect

    run_id = runs[EXAMPLE][-1]
    request_id = request_of(api, EXAMPLE, run_id)
    context, page = browse(browser, stack, api.client.headers["Authorization"].removeprefix("Bearer "))
    try:
        page.goto(f"{stack.base_url}/plugin/kling-videos")  # Browse -> Kling videos
        frame = page.frame_locator("iframe[title='Kling videos']")
        card = frame.locator(f"article[data-request-id='{request_id}']")
        expect(card).to_be_visible()
        # The address stays the page's own: Airflow's UI mirrors a frame's address into it.
        assert urllib.parse.urlsplit(page.url).path.rstrip("/") == "/plugin/kling-videos", page.url
        # Airflow's time format, in UTC as the page says.
        expect(card.locator("time.when")).to_have_text(re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$"))
        expect(card.locator(".status")).to_have_text("success")
        expect(card.locator(".cost")).to_have_text(f"${cost_of(api, EXAMPLE, run_id):.2f}")
        expect(card.locator(".prompt")).to_contain_text("Slow dolly-in on the mug")
        expect(card).to_contain_text("720p")
        video = card.locator("video")
        # GMI's thumbnail is the poster, when the outcome has one (the simulator rotates the shapes).
        if (simulator.record(request_id)["outcome"] or {}).get("thumbnail_image_url"):
            expect(video).to_have_attribute("poster", re.compile(r"/thumbnail\.\w+$"))
        played = play(video)
        assert played["readyState"] >= 3, played
        assert played["currentTime"] > 0.3, played
        page.wait_for_timeout(500)
        page.screenshot(path=str(STATIC / "kling-videos.png"))
    finally:
        context.close()


def test_the_view_looks_like_airflow_in_light_and_dark(browser, stack, api, runs):
    from playwright.sync_api import expect

    context, page = browse(browser, stack, api.client.headers["Authorization"].removeprefix("Bearer "))
    try:
        page.goto(f"{stack.base_url}/plugin/kling-videos")
        frame = page.frame_locator("iframe[title='Kling videos']")
        expect(frame.locator("article.video").first).to_be_visible()
        # Styled controls, not the browser's: no native select arrow, Airflow's rounded corners.
        select = frame.locator("select[name=status]")
        assert select.evaluate("e => getComputedStyle(e).appearance") == "none"
        assert select.evaluate("e => getComputedStyle(e).borderTopLeftRadius") == "6px"
        # Days typed as ISO dates, never the browser's mm/dd/yyyy picker; a wrong one is named.
        since = frame.locator("input[name=since]")
        expect(since).to_have_attribute("type", "text")
        expect(since).to_have_attribute("placeholder", "yyyy-mm-dd")
        since.fill("12/04/2026")
        frame.locator("button[type=submit]").click()
        expect(frame.locator("#message")).to_have_text(
            'Invalid From: "12/04/2026" is not a date. Allowed: yyyy-mm-dd, such as 2026-12-04.'
        )
        since.fill("")
        frame.locator("button[type=submit]").click()
        expect(frame.locator("#message")).to_have_text("")
        # The spend chart has a dollar axis and the value of each day on its bar.
        expect(frame.locator("#per-day svg text.tick", has_text="$0.00")).to_have_count(1)
        expect(frame.locator("#per-day svg text.value").first).to_have_text(re.compile(r"^\$\d+\.\d\d$"))
        assert frame.locator("html").evaluate("e => e.className") == "light"

        # Airflow's dark mode (stored as localStorage "theme", the class "dark" on the UI's <html>).
        page.evaluate("() => localStorage.setItem('theme', 'dark')")
        page.reload()
        frame = page.frame_locator("iframe[title='Kling videos']")
        expect(frame.locator("article.video").first).to_be_visible()
        assert page.evaluate("() => document.documentElement.classList.contains('dark')")
        expect(frame.locator("html")).to_have_class(re.compile(r"\bdark\b"))
        background = frame.locator("body").evaluate("e => getComputedStyle(e).backgroundColor")
        assert background == "rgb(9, 9, 11)", background
        page.wait_for_timeout(500)
        page.screenshot(path=str(STATIC / "kling-videos-dark.png"))
    finally:
        context.close()


def test_the_run_tab_shows_only_that_runs_videos_and_its_totals(browser, stack, api, runs):
    from playwright.sync_api import expect

    run_id, other_run = runs[EXAMPLE][0], runs[EXAMPLE][1]
    context, page = browse(browser, stack, api.client.headers["Authorization"].removeprefix("Bearer "))
    try:
        quoted = urllib.parse.quote(run_id, safe="")
        page.goto(f"{stack.base_url}/dags/{EXAMPLE}/runs/{quoted}/plugin/kling-videos-dag-run")
        frame = page.frame_locator("iframe[title='Kling videos']")
        cards = frame.locator("article.video")
        expect(cards).to_have_count(1)
        expect(cards.first).to_have_attribute("data-request-id", request_of(api, EXAMPLE, run_id))
        expect(frame.locator(f"article[data-run-id='{other_run}']")).to_have_count(0)
        expect(frame.locator("#spend")).to_have_text(f"${cost_of(api, EXAMPLE, run_id):.2f}")
        expect(frame.locator("#count")).to_have_text("1")
        page.wait_for_timeout(500)
        page.screenshot(path=str(STATIC / "kling-run-tab.png"))
    finally:
        context.close()


def test_totals_equal_the_sum_of_the_tasks_estimated_costs(api, runs):
    finished = {dag: list(run_ids) for dag, run_ids in runs.items()}
    costs = {dag: sum(cost_of(api, dag, r) for r in run_ids) for dag, run_ids in finished.items()}
    for dag, expected in costs.items():
        totals = api.get("/kling/api/totals", dag_id=dag)
        earlier = api.get(f"/api/v2/dags/{dag}/dagRuns", limit=100)["dag_runs"]
        everything = sum(cost_of(api, dag, r["dag_run_id"]) for r in earlier if r["state"] == "success")
        assert totals["spend_usd"] == pytest.approx(everything, abs=1e-6), dag
        assert everything >= expected
        per_run = [api.get("/kling/api/totals", dag_id=dag, run_id=r)["spend_usd"] for r in finished[dag]]
        assert sum(per_run) == pytest.approx(expected, abs=1e-6)


def test_a_user_who_may_not_read_a_dag_sees_none_of_its_videos(browser, stack, api, runs):
    from playwright.sync_api import expect

    private_run = runs[PRIVATE_DAG][0]
    secret = request_of(api, PRIVATE_DAG, private_run)
    # The admin sees it: the record exists.
    assert secret in {v["request_id"] for v in api.get("/kling/api/videos", limit=200)["videos"]}

    token = login(stack, VIEWER)
    viewer = httpx.Client(base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert viewer.get(f"/api/v2/dags/{PRIVATE_DAG}").status_code == 403  # Airflow's own answer
    seen = viewer.get("/kling/api/videos", params={"limit": 200}).json()
    assert seen["total"] > 0
    assert {v["dag_id"] for v in seen["videos"]} <= {EXAMPLE, "kling_batch", "kling_product_pipeline"}
    for params in ({"dag_id": PRIVATE_DAG}, {"request_id": secret}):
        assert viewer.get("/kling/api/videos", params=params).json()["total"] == 0
        assert viewer.get("/kling/api/totals", params=params).json()["count"] == 0
    assert PRIVATE_DAG not in viewer.get("/kling/api/dags").json()["dag_ids"]
    assert viewer.get(f"/kling/media/{PRIVATE_DAG}/{private_run}/{secret}/0").status_code == 404

    context, page = browse(browser, stack, token)
    try:
        page.goto(f"{stack.base_url}/kling/")
        expect(page.locator("article.video").first).to_be_visible()
        expect(page.locator(f"article[data-dag-id='{PRIVATE_DAG}']")).to_have_count(0)
        expect(page.locator("select[name=dag_id] option", has_text=PRIVATE_DAG)).to_have_count(0)
    finally:
        context.close()


def test_the_request_link_opens_the_view_for_that_request(browser, stack, api, runs):
    from playwright.sync_api import expect

    run_id = runs[EXAMPLE][0]
    request_id = request_of(api, EXAMPLE, run_id)
    links = api.get(f"/api/v2/dags/{EXAMPLE}/dagRuns/{api.q(run_id)}/taskInstances/submit/links")
    href = links["extra_links"]["Kling request"]
    assert href.startswith("/kling/?")
    assert f"request_id={request_id}" in href
    context, page = browse(browser, stack, api.client.headers["Authorization"].removeprefix("Bearer "))
    try:
        page.goto(f"{stack.base_url}{href}")
        expect(page.locator("article.video")).to_have_count(1)
        expect(page.locator("article.video").first).to_have_attribute("data-request-id", request_id)
        # The page never holds the Kling API key.
        assert stack.kling_api_key
        assert stack.kling_api_key not in page.content()
    finally:
        context.close()


def test_a_downloaded_video_plays_from_the_users_storage(browser, stack, api, runs):
    """The pipeline's download task copies the video; the page plays that copy, not GMI's URL."""
    from playwright.sync_api import expect

    if httpx.get(f"{stack.base_url}/api/v2/pools/kling", headers=api.client.headers).status_code == 404:
        api.post("/api/v2/pools", {"name": "kling", "slots": 4})
    run_id = api.trigger(PIPELINE)
    assert api.wait_for_run(PIPELINE, run_id)["state"] == "success"
    stored = api.xcom(PIPELINE, run_id, "download", map_index=0)["uris"][0]
    context, page = browse(browser, stack, api.client.headers["Authorization"].removeprefix("Bearer "))
    try:
        page.goto(f"{stack.base_url}/kling/?dag_id={PIPELINE}&run_id={urllib.parse.quote(run_id)}")
        video = page.locator("article.video video")
        expect(video).to_have_count(1)
        played = play(video)
        assert "/kling/media/" in played["src"], played  # the stored copy, served by the api-server
        assert played["readyState"] >= 3, played
        assert played["currentTime"] > 0.3, played
    finally:
        context.close()
    media_path = urllib.parse.urlsplit(played["src"]).path
    served = httpx.get(f"{stack.base_url}{media_path}", headers=api.client.headers)
    # The task wrote it relative to its working folder, the deployment's home.
    assert served.content == (stack.home / stored).read_bytes()
