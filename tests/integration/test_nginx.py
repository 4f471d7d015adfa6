"""Submit, wait and download through a real nginx in front of the simulator.

nginx is what stands between many clients and their API: it closes the last request of every
keep-alive connection (``Connection: close``), and every request when keep-alive is off. Here
it proxies the simulator's API and media and serves a static MP4 itself, with keep-alive on,
closing after two requests, and off. Debian's nginx: ``make services`` installs it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.testing import KlingSimulator
from airflow_provider_kling.testing.pytest_plugin import FAST_TIMINGS
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import FakeTI, make_png

NGINX = Path("/usr/sbin/nginx")
pytestmark = pytest.mark.skipif(
    not NGINX.exists(),
    reason="Debian's nginx is not installed (/usr/sbin/nginx); `make services` installs it",
)

#: Videos past any one read: 2 MB, as the simulator streams them and as nginx serves a file.
VIDEO_BYTES = 2 << 20
#: keepalive_timeout and keepalive_requests of each case.
KEEPALIVE = {"on": ("65s", 1000), "closing after two requests": ("65s", 2), "off": ("0", 1000)}

CONFIG = """
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
{user}
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    types {{ video/mp4 mp4; }}
    keepalive_timeout {timeout};
    keepalive_requests {requests};
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{ root {root}; }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def nginx(root: Path, upstream: int, keepalive: str) -> Iterator[str]:
    """nginx in the foreground, as a child of this test, with its own config and paths under ``root``."""
    timeout, requests = KEEPALIVE[keepalive]
    port = free_port()
    # As root, nginx's workers would become "nobody", who cannot read the test's temp folder.
    user = "user root;" if os.geteuid() == 0 else ""
    config = root / "nginx.conf"
    config.write_text(
        CONFIG.format(root=root, user=user, port=port, upstream=upstream, timeout=timeout, requests=requests)
    )
    error_log = root / "error.log"
    proc = subprocess.Popen(
        [str(NGINX), "-p", str(root), "-c", str(config), "-e", str(error_log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"nginx did not start: {error_log.read_text() if error_log.exists() else ''}"
                )
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=list(KEEPALIVE), ids=lambda keepalive: keepalive.replace(" ", "-"))
def proxied(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The base URL of nginx in front of a simulator, ``kling_default`` pointing at it."""
    static = tmp_path / "static"
    static.mkdir()
    (static / "v.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(VIDEO_BYTES - 12))
    simulator = KlingSimulator(media_bytes=VIDEO_BYTES, **FAST_TIMINGS)
    with simulator, nginx(tmp_path, simulator.port, request.param) as base:
        connection = {"conn_type": "kling", "host": base, "password": simulator.api_key}
        monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection))
        yield base


async def first_event(trigger: KlingStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


def test_a_wait_and_its_downloads_go_through_nginx(proxied, tmp_path):
    hook = KlingHook(retry_limit=0)
    # An inline image: GMI echoes it in every record, so each poll's answer is ~600 KB.
    image = "data:image/png;base64," + base64.b64encode(make_png(400, 400, noise=True)).decode()
    submitted = hook.submit("kling-3.0-turbo-i2v", {"first_frame": image, "prompt": "steam"})
    trigger = KlingStatusTrigger(submitted.request_id, end_time=time.time() + 30, poll_interval=0.2)
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "success", event
    # The simulator builds media URLs on the origin the poll came in on: nginx's.
    assert event["media_urls"][0].startswith(proxied)
    # The sync poll, over the submit's connection: closed after it when nginx closes after two.
    for _ in range(3):
        record = hook.get_request(submitted.request_id)
        assert record.status == "success"
        assert record.raw["payload"]["first_frame"] == image

    task = KlingDownloadVideoOperator(
        task_id="download", download_to=str(tmp_path / "out"), media_urls=event["media_urls"]
    )
    result = task.execute({"ti": FakeTI(), "run_id": "manual__2026-01-01T00:00:00+00:00"})
    [written] = result["files"]
    assert written["size"] == VIDEO_BYTES
    assert Path(result["uris"][0]).read_bytes()[4:8] == b"ftyp"

    served = hook.download(f"{proxied}/static/v.mp4", tmp_path / "static.mp4")
    assert served.size == VIDEO_BYTES
    assert (tmp_path / "static.mp4").read_bytes() == (tmp_path / "static" / "v.mp4").read_bytes()
