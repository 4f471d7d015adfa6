"""Real Airflow deployments (:mod:`devtools.deployment`) shared by the e2e tests.

A test runs on the topology its mark names (``@pytest.mark.topology("local")``: SQLite,
LocalExecutor, one triggerer; ``"celery"``: Postgres, CeleryExecutor on Redis, two workers, two
triggerers), or on both when unmarked; pytest starts one topology, runs its tests, stops it,
then starts the next. Every module is marked, so each deployment starts once. The GMI
simulator runs in this process (so tests can script it through its Python API); the Airflow
components reach it over loopback like any other HTTP server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_kling.testing import KlingSimulator
from devtools.deployment import AirflowStack
from devtools.processes import alive, stop_group
from devtools.topology import TOPOLOGIES

ROOT = Path(__file__).resolve().parents[2]

# Long enough that the sensor's first poke sees a running request and must defer, even
# when the worker starts slowly on a busy machine; short enough to keep the suite quick.
QUEUED_SECONDS = 4.0
PROCESSING_SECONDS = 8.0
# GMI's per-organization limit, scaled down: on the celery topology the simulator accepts at
# most this many submits in any RATE_LIMIT_SECONDS, as GMI does per minute.
RATE_LIMIT = 15
RATE_LIMIT_SECONDS = 10.0
#: The example DAG the deployments serve and most tests run.
EXAMPLE = "kling_image_to_video"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots change with every run (ports, times): only `make screenshots` refreshes the docs' copies.
STATIC = (
    ROOT / "docs" / "_static"
    if os.environ.get("KLING_UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "kling-e2e-screenshots"
)
STATIC.mkdir(parents=True, exist_ok=True)
UI_TIMEOUT_MS = 60_000


# Plays a <video> muted (autoplay rules) until it has data ahead and 0.3 s have played, or 20 s pass.
PLAY = """async (v) => {
    v.muted = true;
    await v.play();
    const start = performance.now();
    while (performance.now() - start < 20000 && !(v.readyState >= 3 && v.currentTime > 0.3)) {
        await new Promise((r) => setTimeout(r, 100));
    }
    return {readyState: v.readyState, currentTime: v.currentTime, src: v.currentSrc};
}"""


def play(video: Any) -> dict[str, Any]:
    """Play a video element in the page; its readyState, currentTime and the source it chose."""
    return dict(video.evaluate(PLAY))


def login(stack: Any, username: str) -> str:
    """A JWT for a configured user; the simple auth manager wrote the viewer's password."""
    passwords = json.loads((stack.home / "passwords.json").read_text())
    response = httpx.post(
        f"{stack.base_url}/auth/token", json={"username": username, "password": passwords[username]}
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["access_token"])


def browse(browser, stack, token: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies([{"name": "_token", "value": token, "url": stack.base_url}])
    context.set_default_timeout(60_000)
    return context, context.new_page()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    assert CHROMIUM.exists(), "Chromium is missing: run `make browser` (apt-get install chromium)"
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=UI_TIMEOUT_MS)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "topology(name): run this e2e test on that topology only")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected, deselected = [], []
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
        marker = item.get_closest_marker("topology")
        callspec = getattr(item, "callspec", None)
        topology = callspec.params.get("stack") if callspec is not None else None
        if marker is not None and topology is not None and topology not in marker.args:
            deselected.append(item)
        else:
            selected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(scope="session")
def simulator() -> Iterator[KlingSimulator]:
    with KlingSimulator(
        api_key="e2e-secret-key", queued_seconds=QUEUED_SECONDS, processing_seconds=PROCESSING_SECONDS
    ) as sim:
        yield sim


@pytest.fixture(scope="session", params=TOPOLOGIES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, simulator: KlingSimulator
) -> Iterator[AirflowStack]:
    topology = str(request.param)
    home = tmp_path_factory.mktemp(f"airflow_home_{topology}")
    # The example DAGs as shipped, and beside them the DAGs only these tests run.
    dags = home / "dags"
    shutil.copytree(ROOT / "example_dags", dags)
    for dag_file in (Path(__file__).parent / "dags").glob("*.py"):
        shutil.copy(dag_file, dags)
    deployment = AirflowStack(
        home=home,
        dags_folder=dags,
        kling_base_url=simulator.base_url,
        kling_api_key=simulator.api_key,
        topology=topology,
    )
    if topology == "celery":
        simulator.configure(rate_limit=RATE_LIMIT, rate_limit_seconds=RATE_LIMIT_SECONDS)
    try:
        deployment.start(timeout=600)
        yield deployment
    finally:
        pgids = dict(deployment.pids)
        cleanups = list(deployment.cleanups)
        deployment.stop()
        simulator.configure(rate_limit=None)
        for name, pgid in pgids.items():  # belt and braces: nothing of ours may survive
            stop_group(pgid, timeout=5)
            assert not alive(pgid), f"{name} (process group {pgid}) is still running"
        for folder in cleanups:
            assert not Path(folder).exists(), f"{folder} was not removed"


class AirflowAPI:
    """A small client of Airflow's public REST API (``/api/v2``) with a JWT from ``/auth/token``."""

    def __init__(self, stack: AirflowStack) -> None:
        self.stack = stack
        self.client = httpx.Client(base_url=stack.base_url, timeout=60)
        self.client.headers["Authorization"] = f"Bearer {stack.token()}"

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params or None)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:2000]}"
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = self.client.post(path, json=body)
        assert response.status_code in (200, 201), (
            f"POST {path}: {response.status_code} {response.text[:2000]}"
        )
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Wait for the DAG to be parsed, unpause it (DAGs start paused) and trigger a run."""
        deadline = time.monotonic() + 300
        while self.client.get(f"/api/v2/dags/{dag_id}").status_code != 200:
            assert time.monotonic() < deadline, f"the DAG processor never parsed {dag_id}"
            time.sleep(1)
        response = self.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert response.status_code == 200, response.text
        run = self.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    @staticmethod
    def q(run_id: str) -> str:
        return urllib.parse.quote(run_id, safe="")

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{self.q(run_id)}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, a page of 100 at a time (a big batch has hundreds)."""
        found: list[dict[str, Any]] = []
        while True:
            path = f"/api/v2/dags/{dag_id}/dagRuns/{self.q(run_id)}/taskInstances"
            data = self.get(path, limit=100, offset=len(found), order_by="id")
            found += data["task_instances"]
            if not data["task_instances"] or len(found) >= data["total_entries"]:
                return found

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{self.q(run_id)}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        return dict(self.get(path))

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{self.q(run_id)}/taskInstances/{task_id}"
        path += "/xcomEntries/return_value"
        return self.get(path, map_index=map_index)["value"]

    def log_text(self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{self.q(run_id)}/taskInstances/{task_id}/logs/{try_number}"
        data = self.get(path, full_content="true", map_index=map_index)
        content = data["content"]
        if isinstance(content, str):
            return content
        return "\n".join(json.dumps(entry) if not isinstance(entry, str) else entry for entry in content)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 420) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                tis = self.task_instances(dag_id, run_id)
                states = {(t["task_id"], t["map_index"]): t["state"] for t in tis}
                raise AssertionError(f"{dag_id} {run_id} still {run['state']} after {timeout}s: {states}")
            time.sleep(1)

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """Each failed task of a run with the end of its last try's log: why a run failed."""
        lines = []
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] not in ("failed", "upstream_failed"):
                continue
            lines.append(f"--- {ti['task_id']}[{ti['map_index']}] {ti['state']} (try {ti['try_number']})")
            if ti["state"] == "failed" and ti["try_number"]:
                log = self.log_text(dag_id, run_id, ti["task_id"], ti["try_number"], ti["map_index"])
                lines.extend(log.splitlines()[-25:])
        return "\n".join(lines)

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 300
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            ti = self.task_instance(dag_id, run_id, task_id)
            if not seen or seen[-1] != ti["state"]:
                seen.append(ti["state"])
            if ti["state"] == state:
                return ti
            if ti["state"] in ("success", "failed", "upstream_failed") or time.monotonic() > deadline:
                raise AssertionError(f"{task_id} never reached {state}; states seen: {seen}")
            time.sleep(0.3)

    def triggerer_job_ids(self) -> set[int]:
        jobs = self.get("/api/v2/jobs", job_type="TriggererJob", limit=100)["jobs"]
        return {int(job["id"]) for job in jobs}


def trigger_log_job_ids(log: str) -> set[int]:
    """Ids of the triggerer jobs whose trigger log a task log is made of (``*.log.trigger.<id>.log``)."""
    return {int(found) for found in re.findall(r"\.log\.trigger\.(\d+)\.log", log)}


# Module scope: a module that starts a deployment of its own (its own ``stack``) gets a client of
# it from here too, not a second copy of this fixture.
@pytest.fixture(scope="module")
def api(stack: AirflowStack) -> Iterator[AirflowAPI]:
    client = AirflowAPI(stack)
    yield client
    client.client.close()


def states(api: AirflowAPI, dag_id: str, run_id: str) -> dict[tuple[str, int], str]:
    return {(t["task_id"], t["map_index"]): t["state"] for t in api.task_instances(dag_id, run_id)}


def failure_log(api: AirflowAPI, dag_id: str, run_id: str, key: tuple[str, int]) -> str:
    """The end of a task's log, to say why it did not succeed."""
    task_id, map_index = key
    try:
        ti = api.task_instance(dag_id, run_id, task_id, map_index=map_index)
        return (
            f"{ti['state']}: "
            + api.log_text(dag_id, run_id, task_id, ti["try_number"], map_index=map_index)[-1500:]
        )
    except Exception as err:  # a diagnostic only: never hide the assertion behind it
        return f"(log unavailable: {err})"
