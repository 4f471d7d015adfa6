"""The Airflow UI in a real (headless) Chromium: the connection form and a finished run.

Debian's ``/usr/bin/chromium`` driven by Playwright's Python package (``make browser``
installs it; ``playwright install`` is never used). Screenshots go to a temporary folder,
or to ``docs/_static/`` (the docs show them) with ``make screenshots``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse

import pytest

from .conftest import EXAMPLE, STATIC, UI_TIMEOUT_MS, AirflowAPI

# A whole deployment on two cores: far above pyproject's 300 s default, bounded all the same.
pytestmark = [pytest.mark.topology("celery"), pytest.mark.timeout(900)]


@pytest.fixture
def page(browser, stack, api: AirflowAPI):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    # Logged in as the admin: the UI keeps its JWT in the `_token` cookie.
    token = api.client.headers["Authorization"].removeprefix("Bearer ")
    context.add_cookies([{"name": "_token", "value": token, "url": stack.base_url}])
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def test_the_connection_form_shows_the_kling_fields_and_tests_against_the_simulator(
    page, stack, api, simulator
):
    from playwright.sync_api import expect

    calls_before = simulator.count("GET /models")
    page.goto(f"{stack.base_url}/connections")  # Admin -> Connections
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill("kling_ui")
    dialog.get_by_role("combobox").fill("Kling")
    page.get_by_role("option", name="Kling (GMI Cloud)").click()

    # Standard fields, relabelled: the key is a password field.
    expect(dialog.get_by_text("Base URL", exact=True)).to_be_visible()
    api_key = dialog.get_by_label("API key", exact=True)
    expect(api_key).to_have_attribute("type", "password")
    expect(api_key).to_have_attribute("placeholder", "GMI Cloud API key")
    expect(dialog.locator("input[name=login]")).to_have_count(0)
    # Port is shown, for the Test button of Airflow 3.3.2 (it works only with a stored port).
    expect(dialog.locator("input[name=port]")).to_have_attribute("placeholder", "empty, or e.g. 443")
    expect(dialog.get_by_text("Port (optional; 443 lets the Test button work)", exact=True)).to_be_visible()
    dialog.locator("input[name=host]").fill(simulator.base_url)
    dialog.locator("input[name=port]").fill(str(urllib.parse.urlsplit(simulator.base_url).port))
    api_key.fill(simulator.api_key)
    STATIC.mkdir(parents=True, exist_ok=True)
    dialog.screenshot(path=str(STATIC / "connection-form.png"))

    # Extra fields, with their labels and help texts.
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    expect(dialog.get_by_text("Organization ID", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Timeout (seconds)", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Sent as the X-Organization-ID header", exact=False)).to_be_visible()
    dialog.locator("input[name=element_organization_id]").fill("00000000-0000-4000-8000-00000000a11f")
    dialog.get_by_label("Timeout (seconds)").fill("20")
    dialog.screenshot(path=str(STATIC / "connection-form-extra.png"))

    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    row = page.get_by_role("row").filter(has_text="kling_ui")
    expect(row).to_be_visible()
    # The real request, unpatched: with a stored port, Airflow 3.3.2's Test button works.
    row.get_by_role("button", name="Test Connection").click()
    # The API server ran KlingHook.test_connection() against the simulator; the UI toasts its answer.
    expect(page.get_by_text("Test Connection Successful")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Connected to GMI Cloud at .*models served"))).to_be_visible()
    page.wait_for_timeout(800)  # let the toast finish sliding in, for the screenshot only
    page.screenshot(path=str(STATIC / "connection-test.png"))

    saved = api.get("/api/v2/connections/kling_ui")
    assert saved["conn_type"] == "kling"
    assert saved["host"] == simulator.base_url
    extra = json.loads(saved["extra"])
    assert extra == {"organization_id": "00000000-0000-4000-8000-00000000a11f", "timeout": 20}
    # The Test button ran the hook's test_connection in the API server, against the simulator.
    assert simulator.count("GET /models") > calls_before


def test_without_a_stored_port_the_test_button_meets_the_upstream_bug_the_docs_name(page, stack, api):
    # docs/troubleshooting.rst names this answer of Airflow 3.3.2 (its UI sends `port: 0` for a
    # stored empty port; apache/airflow#73298) and its fix, a port in the Port field. When an
    # upgrade stops this test failing the way it does, that page must change.
    from playwright.sync_api import expect

    conn = {"connection_id": "kling_no_port", "conn_type": "kling", "host": stack.kling_base_url}
    api.post("/api/v2/connections", {**conn, "password": stack.kling_api_key})
    page.goto(f"{stack.base_url}/connections")
    row = page.get_by_role("row").filter(has_text="kling_no_port")
    with page.expect_response("**/api/v2/connections/test") as answer:
        row.get_by_role("button", name="Test Connection").click()
    assert answer.value.status == 400
    assert "differs from the stored connection" in answer.value.text()
    expect(page.get_by_text("Test Connection Failed")).to_be_visible()


def _successful_run(api: AirflowAPI) -> str:
    runs = api.get(f"/api/v2/dags/{EXAMPLE}/dagRuns", state="success", order_by="-run_after")["dag_runs"]
    if runs:
        return str(runs[0]["dag_run_id"])
    run_id = api.trigger(EXAMPLE)
    assert api.wait_for_run(EXAMPLE, run_id)["state"] == "success"
    return run_id


def test_the_dag_run_shows_every_task_successful_and_the_sensor_links_to_the_video(page, stack, api):
    from playwright.sync_api import expect

    run_id = _successful_run(api)
    video_url = api.xcom(EXAMPLE, run_id, "wait")["media_urls"][0]
    run_path = f"/dags/{EXAMPLE}/runs/{urllib.parse.quote(run_id, safe='')}"

    page.goto(f"{stack.base_url}{run_path}")
    expect(page.get_by_text("3 Task Instances")).to_be_visible()
    for task_id in ("submit", "wait", "download"):
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=task_id, exact=True))
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Success")
    page.screenshot(path=str(STATIC / "dag-run.png"))

    # The sensor's "Kling video" extra link, on the task instance's Details tab.
    page.goto(f"{stack.base_url}{run_path}/tasks/wait/details")
    link = page.get_by_role("link", name="Kling video", exact=True)  # not the "Kling videos" tab
    expect(link).to_have_attribute("href", video_url)
    link.click()
    deadline = time.monotonic() + 60
    while not any(p.url == video_url for p in page.context.pages):
        assert time.monotonic() < deadline, [p.url for p in page.context.pages]
        page.wait_for_timeout(200)
    response = page.context.request.get(video_url)
    assert response.ok
    assert response.body()[4:8] == b"ftyp"
