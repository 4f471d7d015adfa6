"""The Kling videos app: every route behind Airflow's login, and stored copies served safely."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.api_fastapi.common.db.common import _get_session
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from airflow_provider_kling.plugins import kling as plugin
from airflow_provider_kling.plugins.app import create_app, readable_dag_ids
from devtools.seed import FakeRequest, insert

SAMPLE = Path(__file__).parents[2] / "airflow_provider_kling" / "testing" / "data" / "sample.mp4"


def test_every_route_answers_401_without_a_login():
    app = create_app()
    client = TestClient(app)
    paths = {
        "/": "/",
        "/static/{name}": "/static/app.js",
        "/media/{dag_id}/{run_id}/{request_id}/{index}": "/media/d/r/x/0",
    }
    routes = [r.path for r in app.routes if getattr(r, "methods", None)]
    assert len(routes) == 6
    for route in routes:
        response = client.get(paths.get(route, route))
        assert response.status_code == 401, route
        assert response.json() == {"detail": "Not authenticated"}


@pytest.fixture
def client(tmp_path, metadata_engine):
    """The app with a database of records, and a caller who may read only the ``public`` DAG."""
    engine = metadata_engine
    video = tmp_path / "stored.mp4"
    video.write_bytes(SAMPLE.read_bytes())
    text = tmp_path / "secrets.txt"
    text.write_text("not a video")
    with Session(engine) as session:
        reqs = insert(
            session,
            [
                FakeRequest("public", "r", request_id="vid", uris=[str(video)]),
                FakeRequest("public", "r", task_id="t2", request_id="txt", uris=[str(text)]),
                FakeRequest("public", "r", task_id="t3", request_id="rel", uris=["out/relative.mp4"]),
                FakeRequest("secret", "r", request_id="hidden", uris=[str(video)]),
            ],
        )
        app = create_app()
        app.dependency_overrides[_get_session] = lambda: session
        # A logged-in caller (the login itself is the e2e tests' business) who may read "public".
        app.dependency_overrides[get_user] = lambda: object()
        app.dependency_overrides[readable_dag_ids] = lambda: {"public"}
        yield TestClient(app), reqs


def test_a_stored_copy_is_served_with_byte_ranges_so_the_player_can_seek(client):
    http, _ = client
    whole = http.get("/media/public/r/vid/0")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.content == SAMPLE.read_bytes()
    part = http.get("/media/public/r/vid/0", headers={"Range": "bytes=4-7"})
    assert part.status_code == 206
    assert part.content == b"ftyp"


def test_only_recorded_videos_of_readable_dags_are_served(client):
    http, _ = client
    assert http.get("/media/secret/r/hidden/0").status_code == 404  # as if it did not exist
    assert http.get("/media/public/r/vid/1").status_code == 404
    assert http.get("/media/public/r/txt/0").status_code == 415  # a recorded file that is no video
    assert http.get("/media/public/r/rel/0").status_code == 404  # relative to some worker's folder


def test_the_json_routes_show_only_readable_dags(client):
    http, _ = client
    videos = http.get("/api/videos").json()
    assert {v["dag_id"] for v in videos["videos"]} == {"public"}
    assert videos["total"] == 3
    assert http.get("/api/videos", params={"dag_id": "secret"}).json()["total"] == 0
    assert http.get("/api/dags").json() == {"dag_ids": ["public"]}
    assert http.get("/api/totals").json()["count"] == 3
    assert http.get("/api/videos", params={"limit": 0}).status_code == 422
    page = http.get("/").text
    assert "Kling videos" in page
    assert "api_key" not in page.lower()


def test_the_plugin_mounts_its_app_only_in_the_api_server_and_shows_it_everywhere_in_the_ui():
    assert plugin.running_in_api_server(["/usr/bin/airflow", "api-server", "--port", "8080"])
    assert not plugin.running_in_api_server(["/usr/bin/airflow", "dag-processor"])
    assert not plugin.running_in_api_server(["/usr/bin/airflow", "scheduler"])
    assert plugin.KlingVideosPlugin.fastapi_apps == []  # pytest is not the api-server
    views = {v["destination"]: v for v in plugin.views()}
    assert set(views) == {"nav", "dag", "dag_run", "task", "task_instance"}
    assert views["nav"]["href"] == "/kling/"
    assert views["dag_run"]["href"] == "/kling/?dag_id={DAG_ID}&run_id={RUN_ID}"
    assert views["task_instance"]["href"].endswith("&task_id={TASK_ID}&map_index={MAP_INDEX}")
    assert len({v["url_route"] for v in views.values()}) == 5


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


# An iPhone photo: major brand heic, compatible mif1 and heic, then its meta box.
HEIC = _box(b"ftyp", b"heic" + bytes(4) + b"mif1heic") + _box(b"meta", bytes(64))
# An image sequence that also claims an ISO brand a video would list.
HEIF_SEQUENCE = _box(b"ftyp", b"msf1" + bytes(4) + b"msf1iso8hevc") + _box(b"moov", bytes(64))


def _avif() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, format="AVIF")
    return buffer.getvalue()


def _rendered_mp4(png: bytes) -> bytes:
    from airflow_provider_kling.testing import media

    return media.render_video(png) if media.video_support() else media.fallback_video()


@pytest.fixture
def stored(tmp_path, metadata_engine, png_bytes):
    """The app with one recorded copy per kind of file, as a task could have written them."""
    contents = {
        "sample": SAMPLE.read_bytes(),
        "rendered": _rendered_mp4(png_bytes),
        "heic": HEIC,
        "avif": _avif(),
        "sequence": HEIF_SEQUENCE,
        "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(32),
    }
    records = []
    for name, data in contents.items():
        path = tmp_path / f"{name}.mp4"  # every one named .mp4: the name proves nothing
        path.write_bytes(data)
        records.append(FakeRequest("public", "r", task_id=name, request_id=name, uris=[str(path)]))
    with Session(metadata_engine) as session:
        insert(session, records)
        app = create_app()
        app.dependency_overrides[_get_session] = lambda: session
        app.dependency_overrides[get_user] = lambda: object()
        app.dependency_overrides[readable_dag_ids] = lambda: {"public"}
        yield TestClient(app), contents


def test_only_videos_are_served_never_a_heic_or_avif_photo_in_the_same_box(stored):
    http, contents = stored
    for name in ("sample", "rendered"):
        video = http.get(f"/media/public/r/{name}/0")
        assert video.status_code == 200, name
        assert video.headers["content-type"] == "video/mp4"
        assert video.content == contents[name]
    assert http.get("/media/public/r/webm/0").headers["content-type"] == "video/webm"
    for name in ("heic", "avif", "sequence"):
        assert contents[name][4:8] == b"ftyp"  # what the view used to take for a video
        refused = http.get(f"/media/public/r/{name}/0")
        assert refused.status_code == 415, name
        assert "not a HEIC or AVIF photo" in refused.json()["detail"]


def test_an_object_store_copy_is_sniffed_the_same_way(tmp_path, png_bytes):
    from fastapi import HTTPException

    from airflow_provider_kling.plugins.app import stored_video

    (tmp_path / "photo.mp4").write_bytes(_avif())
    with pytest.raises(HTTPException) as refused:
        stored_video(f"file://{tmp_path / 'photo.mp4'}")
    assert refused.value.status_code == 415
    (tmp_path / "clip.mp4").write_bytes(_rendered_mp4(png_bytes))
    assert stored_video(f"file://{tmp_path / 'clip.mp4'}").media_type == "video/mp4"


def test_the_page_names_its_own_address_as_its_base_and_serves_its_theme(client):
    # Inside Airflow's UI the script moves the frame's address to the UI's root, so the UI
    # does not mirror /kling/ into its address bar: relative URLs must then still reach the app.
    http, _ = client
    page = http.get("/", headers={"host": "airflow.example"})
    assert page.status_code == 200
    assert '<head>\n<base href="/">' in page.text
    assert 'src="static/theme.js"' in page.text
    theme = http.get("/static/theme.js")
    assert theme.status_code == 200
    assert 'getItem("theme")' in theme.text  # Airflow's stored colour mode
    assert http.get("/static/index.html").status_code == 404


def test_the_status_filter_offers_exactly_the_statuses_a_card_can_show():
    """static/index.html keeps a copy of the view's statuses (they come from api/): the two agree."""
    import re

    from airflow_provider_kling.plugins.queries import VIEW_STATUSES

    page = (Path(plugin.__file__).parent / "static" / "index.html").read_text()
    select = page[page.index('<select name="status">') : page.index("</select>", page.index('name="status"'))]
    offered = [v for v in re.findall(r'<option value="([^"]*)"', select) if v]
    assert sorted(offered) == sorted(VIEW_STATUSES)


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is missing: run `make browser`")
def test_the_page_shows_a_reviewed_videos_takes_together_with_the_approved_one_and_the_notes(
    metadata_engine,
):
    """The real page and script in headless Chromium, its requests answered by the app above."""
    # The 3.1 floor's environment has no browser driver; `make unit` installs Chromium.
    pytest.importorskip("playwright.sync_api")
    from playwright.sync_api import Route, sync_playwright

    def review(decision: str, who: str, notes: str | None = None) -> dict[str, object]:
        return {"decision": decision, "reviewer": who, "notes": notes, "timed_out": False}

    with Session(metadata_engine) as session:
        first, second, _ = insert(
            session,
            [
                FakeRequest(
                    "public", "r", "review.take_1", 0, take=1, review=review("Regenerate", "ana", "slower")
                ),
                FakeRequest("public", "r", "review.take_2", 0, take=2, review=review("Approve", "ben")),
                FakeRequest("public", "r", "plain"),
            ],
        )
        app = create_app()
        app.dependency_overrides[_get_session] = lambda: session
        app.dependency_overrides[get_user] = lambda: object()
        app.dependency_overrides[readable_dag_ids] = lambda: {"public"}
        http = TestClient(app)

        def forward(route: Route) -> None:
            answer = http.get(route.request.url.removeprefix("http://kling.test/kling"))
            route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.content)

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"]
            )
            try:
                page = browser.new_page()
                page.route("http://kling.test/**", forward)
                page.goto("http://kling.test/kling/")
                group = page.locator("section.takes")
                group.wait_for()
                cards = group.locator("article.video")
                assert cards.evaluate_all("cs => cs.map(c => c.dataset.requestId)") == [
                    first.request_id,
                    second.request_id,
                ]
                assert "approved" in str(cards.nth(1).get_attribute("class"))
                assert "approved" not in str(cards.nth(0).get_attribute("class"))
                heading = group.locator("h2").inner_text()
                assert "2 takes" in heading
                assert "Take 2 approved by ben" in heading
                assert group.locator(".notes li").all_inner_texts() == [
                    "Take 1: Regenerate by ana · notes: slower",
                    "Take 2: Approve by ben",
                ]
                # The plain request is a video of its own, outside any group; totals count each take.
                assert page.locator("#gallery > article.video").count() == 1
                assert page.locator("#count").inner_text() == "3"
                assert page.locator("#range").inner_text() == "1\u20132 of 2 videos"
            finally:
                browser.close()
