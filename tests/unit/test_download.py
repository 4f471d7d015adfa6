"""Videos into storage: the download operator, ``download_to`` and asset events, against the simulator."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, ObjectStoragePath

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.exceptions import KlingDownloadError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.tasks.outputs import output_names, safe_relative_name

ASSET = Asset("kling://videos/product")


@pytest.fixture(scope="module", autouse=True)
def memory_store() -> None:
    """Attach fsspec's in-memory filesystem as Airflow's ``memory://`` object store."""
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach(protocol="memory", fs=MemoryFileSystem())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(**kwargs: Any) -> KlingDownloadVideoOperator:
    kwargs.setdefault("task_id", "download")
    return KlingDownloadVideoOperator(**kwargs)


def test_videos_stream_to_a_local_folder_under_the_default_name(finished, context, tmp_path):
    result = download(download_to=str(tmp_path), request_id=finished["request_id"]).execute(context)
    expected = tmp_path / "manual__2026-01-01T00_00_00_00_00" / f"{finished['request_id']}_0.mp4"
    assert result["uris"] == [str(expected)]
    data = expected.read_bytes()
    assert data[4:8] == b"ftyp"
    assert result["files"] == [
        {"url": finished["media_urls"][0], "uri": str(expected), "size": len(data), "sha256": sha256(data)}
    ]
    assert [p.name for p in expected.parent.iterdir()] == [expected.name]  # no temporary file left
    assert context["ti"].pushed["request_id"] == finished["request_id"]


def test_a_retry_deletes_what_a_killed_try_left_of_the_same_video(finished, context, tmp_path):
    # A worker SIGKILLed mid-download leaves its hidden part file (nothing under the final name);
    # the retry's successful write removes it, but never a part file another writer still fills.
    folder = tmp_path / "manual__2026-01-01T00_00_00_00_00"
    folder.mkdir()
    name = f"{finished['request_id']}_0.mp4"
    killed = folder / f".{name}.k1ll3d.part"
    killed.write_bytes(b"\x00\x00\x00\x18ftyp half a video")
    os.utime(killed, (time.time() - 3600, time.time() - 3600))
    live = folder / f".{name}.w0rk1n.part"
    live.write_bytes(b"being written")
    os.utime(live, (time.time() + 60, time.time() + 60))  # touched after this write began
    other = folder / ".other.mp4.k1ll3d.part"
    other.write_bytes(b"another video's leftover")
    os.utime(other, (time.time() - 3600, time.time() - 3600))

    download(download_to=str(tmp_path), request_id=finished["request_id"]).execute(context)

    assert sorted(p.name for p in folder.iterdir()) == sorted([name, live.name, other.name])


def test_videos_stream_to_an_fsspec_memory_store(finished, context):
    result = download(
        download_to="memory://kling-test/videos",
        media_urls=finished["media_urls"],
        download_filename="{index}.mp4",
    ).execute(context)
    target = ObjectStoragePath("memory://kling-test/videos/0.mp4")
    data = target.read_bytes()
    assert data[4:8] == b"ftyp"
    assert result["files"][0]["sha256"] == sha256(data)
    assert result["files"][0]["uri"].endswith("kling-test/videos/0.mp4")
    assert not ObjectStoragePath("memory://kling-test/videos/.0.mp4.part").exists()


def test_videos_stream_to_a_file_uri_object_store(finished, context, tmp_path):
    result = download(download_to=f"file://{tmp_path}/store", request_id=finished).execute(context)
    written = tmp_path / "store" / "manual__2026-01-01T00_00_00_00_00" / f"{finished['request_id']}_0.mp4"
    assert written.read_bytes()[4:8] == b"ftyp"
    assert result["files"][0]["size"] == written.stat().st_size


def test_a_file_name_cannot_escape_the_destination(finished, context, tmp_path):
    dest = tmp_path / "dest"
    task = download(
        download_to=str(dest), media_urls=finished["media_urls"], download_filename="../../../etc/{index}.mp4"
    )
    written = Path(task.execute(context)["uris"][0])
    assert written == dest / "etc" / "0.mp4"
    assert safe_relative_name("/abs/../.hidden/a b?.mp4") == "abs/hidden/a_b_.mp4"
    with pytest.raises(KlingValidationError, match="Invalid filename"):
        safe_relative_name("../..")


def test_a_template_without_index_cannot_overwrite_a_second_video():
    with pytest.raises(KlingValidationError, match="same name"):
        output_names("{request_id}.mp4", "r1", 2)
    with pytest.raises(KlingValidationError, match="cannot be filled in"):
        output_names("{ds}.mp4", "r1", 1)


def test_a_video_over_the_size_cap_is_refused_and_nothing_is_left(finished, context, tmp_path):
    with pytest.raises(KlingDownloadError, match="cap of 100 bytes"):
        download(
            download_to=str(tmp_path), media_urls=finished["media_urls"], download_max_bytes=100
        ).execute(context)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_size_cap_holds_while_streaming_without_a_content_length(finished, tmp_path, monkeypatch):
    import requests

    real_get = requests.Session.get

    def get(*args: Any, **kwargs: Any) -> requests.Response:  # the download's own session
        # As a chunked answer would: no length to check up front.
        resp = real_get(*args, **kwargs)
        del resp.headers["Content-Length"]
        return resp

    monkeypatch.setattr(requests.Session, "get", get)
    with pytest.raises(KlingDownloadError, match="larger than the cap"):
        KlingHook().download(finished["media_urls"][0], tmp_path / "v.mp4", max_bytes=100, chunk_size=64)
    assert list(tmp_path.iterdir()) == []


def test_a_download_that_is_not_a_video_is_refused(finished, context, tmp_path):
    thumbnail = finished["media_urls"][0].replace("sample_0.mp4", "thumbnail.jpg")
    with pytest.raises(KlingDownloadError, match="Content-Type 'image/jpeg', not a video"):
        download(download_to=str(tmp_path), media_urls=[thumbnail]).execute(context)
    assert list(tmp_path.iterdir()) == []


def test_the_asset_event_describes_the_video(finished, context, tmp_path):
    task = download(
        download_to=str(tmp_path),
        request_id=finished["request_id"],
        outlets=[ASSET],
        request_info={"prompt": "steam", "duration": 5, "resolution": "1080p"},
    )
    result = task.execute(context)
    extra = context["outlet_events"][ASSET].extra
    assert extra == {
        "request_id": finished["request_id"],
        "model": "kling-3.0-turbo-i2v",  # from GMI's record
        "prompt": "steam",
        "duration": "5",
        "resolution": "1080p",
        "estimated_cost_usd": pytest.approx(0.7),
        "cost_usd": pytest.approx(0.7),  # its deprecated name, for DAGs of the previous version
        "media_urls": finished["media_urls"],
        "uris": result["uris"],
    }


def test_a_running_request_cannot_be_downloaded(kling_simulator, kling_connection_env, context, tmp_path):
    record = KlingHook().submit(
        "kling-3.0-turbo-i2v", {"first_frame": "https://e.x/a.png", "prompt": "SIMULATE_STUCK"}
    )
    with pytest.raises(ValueError, match="still queued"):
        download(download_to=str(tmp_path), request_id=record.request_id).execute(context)


def test_the_operator_waits_downloads_and_sets_the_asset_event(
    kling_simulator, kling_connection_env, context, tmp_path, png_bytes
):
    task = KlingI2VOperator(
        task_id="submit",
        first_frame=png_bytes,
        prompt="steam rises",
        duration=4,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
        download_to=f"file://{tmp_path}",
        download_filename="videos/{request_id}.mp4",
        outlets=[ASSET],
    )
    result = task.execute(context)
    [written] = result["files"]
    assert Path(written["uri"].removeprefix("file://")).read_bytes()[4:8] == b"ftyp"
    assert result["estimated_cost_usd"] == pytest.approx(0.448)
    extra = context["outlet_events"][ASSET].extra
    assert extra["prompt"] == "steam rises"
    assert extra["duration"] == "4"
    assert extra["resolution"] == "720p"
    assert extra["estimated_cost_usd"] == extra["cost_usd"] == pytest.approx(0.448)
    assert extra["uris"] == [written["uri"]]
    assert "first_frame" not in str(extra)


def test_the_sensor_downloads_in_poke_mode(finished, context, tmp_path):
    sensor = KlingStatusSensor(
        task_id="wait",
        request_id=finished["request_id"],
        deferrable=False,
        poke_interval=0.1,
        download_to=str(tmp_path),
        outlets=[ASSET],
    )
    result = sensor.execute(context)
    assert Path(result["files"][0]["uri"]).read_bytes()[4:8] == b"ftyp"
    assert context["outlet_events"][ASSET].extra["model"] == "kling-3.0-turbo-i2v"


def test_the_sensor_downloads_after_the_trigger_fires(finished, context):
    sensor = KlingStatusSensor(
        task_id="wait",
        request_id=finished["request_id"],
        deferrable=True,
        download_to="memory://after-trigger",
    )
    event = {"status": "success", "request_id": finished["request_id"], "media_urls": finished["media_urls"]}
    result = sensor.execute_complete(context, event=event)
    assert ObjectStoragePath(result["files"][0]["uri"]).read_bytes()[4:8] == b"ftyp"


def test_download_to_needs_a_wait():
    with pytest.raises(ValueError, match="download_to needs wait_for_completion"):
        KlingI2VOperator(task_id="t", first_frame="https://e.x/a.png", download_to="/tmp/x")


def test_a_download_cut_off_mid_stream_leaves_nothing_in_an_object_store(finished, context, monkeypatch):
    import requests

    real_get = requests.Session.get

    def get(*args: Any, **kwargs: Any) -> requests.Response:  # the download's own session
        resp = real_get(*args, **kwargs)
        del resp.headers["Content-Length"]  # so the cap trips while streaming, after a write
        return resp

    monkeypatch.setattr(requests.Session, "get", get)
    with pytest.raises(KlingDownloadError, match="larger than the cap"):
        KlingHook().download(
            finished["media_urls"][0],
            ObjectStoragePath("memory://cut-off/v.mp4"),
            max_bytes=100,
            chunk_size=64,
        )
    assert not ObjectStoragePath("memory://cut-off/.v.mp4.part").exists()
    assert not ObjectStoragePath("memory://cut-off/v.mp4").exists()
