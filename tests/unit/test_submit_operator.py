"""The generic submit operator, its extra links and status logs, against the simulator."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.links import kling as links
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.operators.submit import KlingSubmitOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor


def test_text_to_video_is_checked_and_submitted(kling_simulator, kling_connection_env, context):
    task = KlingSubmitOperator(
        task_id="t2v",
        model="kling-3.0-turbo-t2v",
        payload={"prompt": "a red fox in snow", "aspect_ratio": "9:16", "duration": 6},
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
    )
    result = task.execute(context)
    sent = kling_simulator.requests[0]
    assert sent.model == "kling-3.0-turbo-t2v"
    assert sent.payload == {"prompt": "a red fox in snow", "aspect_ratio": "9:16", "duration": "6"}
    assert result["status"] == "success"
    assert result["estimated_cost_usd"] == pytest.approx(0.672)


def test_v3_image_to_video_sends_both_frames_as_base64(
    kling_simulator, kling_connection_env, context, png_bytes, tmp_path
):
    import base64

    tail = tmp_path / "tail.png"
    tail.write_bytes(png_bytes)
    task = KlingSubmitOperator(
        task_id="v3",
        model="kling-v3-image-to-video",
        payload={"prompt": "turn", "image": png_bytes, "image_tail": str(tail), "sound": "on"},
    )
    task.execute(context)
    sent = kling_simulator.requests[0].payload
    assert sent["image"] == sent["image_tail"] == base64.b64encode(png_bytes).decode()
    assert sent["sound"] == "on"


def test_a_bad_payload_is_refused_before_any_post(kling_simulator, kling_connection_env, context):
    task = KlingSubmitOperator(
        task_id="v3",
        model="kling-v3-image-to-video",
        payload={"prompt": "turn", "imgae": "https://e.x/a.png"},
    )
    with pytest.raises(KlingValidationError, match="imgae is not a parameter of kling-v3-image-to-video"):
        task.execute(context)
    assert kling_simulator.count("POST /requests") == 0


def test_an_unknown_model_is_sent_as_given_with_a_note(
    kling_simulator, kling_connection_env, context, capsys
):
    payload = {"prompt": "a fox", "image": "https://e.x/a.png", "mode": "pro", "cfg_scale": 0.5}
    KlingSubmitOperator(task_id="v26", model="kling-v2-6", payload=payload).execute(context)
    assert kling_simulator.requests[0].payload == payload
    assert "not validated" in "".join(capsys.readouterr())


def test_status_transitions_are_logged_with_elapsed_time(
    kling_simulator, kling_connection_env, context, png_bytes, capsys
):
    KlingI2VOperator(
        task_id="submit",
        first_frame=png_bytes,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.05,
    ).execute(context)
    logs = "".join(capsys.readouterr())
    for status in ("queued", "processing", "success"):
        assert f"is {status} (" in logs
    assert "(first check); submitted" in logs


class _Key:
    dag_id = "nightly"
    run_id = "manual__2026-12-01T00:00:00+00:00"
    task_id = "wait"
    map_index = -1


def test_the_request_link_opens_the_kling_videos_view_for_the_request(monkeypatch):
    xcoms = {"request_id": "abc/1", "return_value": {"media_urls": ["http://v/0.mp4"]}}
    monkeypatch.setattr(links, "_xcom", lambda ti_key, key: xcoms.get(key))
    task = KlingStatusSensor(task_id="wait", request_id="abc/1")
    url = urlsplit(links.KlingRequestLink().get_link(task, ti_key=_Key()))
    assert url.path == "/kling/"
    assert parse_qs(url.query) == {"dag_id": ["nightly"], "run_id": [_Key.run_id], "request_id": ["abc/1"]}
    assert links.KlingVideoLink().get_link(task, ti_key=_Key()) == "http://v/0.mp4"


def test_the_request_link_reads_the_sensor_result_and_is_empty_without_one(monkeypatch):
    task = KlingStatusSensor(task_id="wait", request_id="r1")
    monkeypatch.setattr(
        links, "_xcom", lambda ti_key, key: {"request_id": "r1"} if key == "return_value" else None
    )
    assert links.KlingRequestLink().get_link(task, ti_key=_Key()).endswith("&request_id=r1")
    monkeypatch.setattr(links, "_xcom", lambda ti_key, key: None)
    assert links.KlingRequestLink().get_link(task, ti_key=_Key()) == ""


def test_every_kling_task_shows_both_links():
    for task in (
        KlingI2VOperator(task_id="a", first_frame="https://e.x/a.png"),
        KlingSubmitOperator(task_id="b", model="kling-3.0-turbo-t2v", payload={"prompt": "x"}),
        KlingStatusSensor(task_id="c", request_id="r"),
    ):
        assert {link.name for link in task.operator_extra_links} == {"Kling video", "Kling request"}


def test_inline_images_in_a_payload_stay_out_of_the_rendered_fields(
    kling_simulator, kling_connection_env, context, png_bytes
):
    import base64

    b64 = base64.b64encode(png_bytes).decode()
    task = KlingSubmitOperator(
        task_id="v3",
        model="kling-v3-image-to-video",
        payload={"prompt": "{{ params.p }}", "image": png_bytes},
    )
    task.render_template_fields({"params": {"p": "turn"}})
    assert task.payload["prompt"] == "turn"
    assert "inline image" in task.payload["image"]
    assert b64 not in str(task.payload)
    task.execute(context)
    assert kling_simulator.requests[0].payload["image"] == b64
