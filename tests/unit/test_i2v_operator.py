"""KlingI2VOperator against the simulator: validation, submit, XCom, waiting."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.exceptions import KlingRequestFailedError
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.compat import TaskDeferred


@pytest.fixture
def image(tmp_path, png_bytes):
    path = tmp_path / "frame.png"
    path.write_bytes(png_bytes)
    return path


def op(**kwargs: Any) -> KlingI2VOperator:
    kwargs.setdefault("task_id", "submit")
    kwargs.setdefault("deferrable", False)
    return KlingI2VOperator(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration": 2}, "duration"),
        ({"duration": "ten"}, "duration"),
        ({"resolution": "4k"}, "resolution"),
        ({"prompt": "x" * 2501}, "prompt"),
        ({"model": ""}, "model"),
        ({"first_frame": "ftp://example.com/a.png"}, "first_frame"),
    ],
)
def test_literal_bad_input_fails_when_the_dag_is_parsed(kwargs, field):
    kwargs.setdefault("first_frame", "https://example.com/a.png")
    with pytest.raises(KlingValidationError, match=f"Invalid {field}"):
        op(**kwargs)


def test_templated_bad_input_fails_before_any_post(kling_simulator, kling_connection_env, context):
    task = op(first_frame="https://example.com/a.png", duration="{{ params.d }}")
    task.duration = "42"  # what rendering would produce
    with pytest.raises(KlingValidationError, match="Invalid duration: 42 is out of range"):
        task.execute(context)
    assert kling_simulator.count("POST /requests") == 0
    assert context["ti"].pushed == {}


def test_local_file_is_sent_as_base64_and_id_is_pushed(
    kling_simulator, kling_connection_env, context, image, capsys
):
    task = op(first_frame=str(image), prompt="steam rises", resolution="1080p", duration="10")
    request_id = task.execute(context)
    record = context["ti"].pushed.pop("kling_request")
    assert context["ti"].pushed == {"request_id": request_id, "estimated_cost_usd": 1.4}
    # What the Kling videos view shows for this request: never the image, only its file's name.
    assert record == {
        "request_id": request_id,
        "model": "kling-3.0-turbo-i2v",
        "prompt": "steam rises",
        "duration": "10",
        "resolution": "1080p",
        "estimated_cost_usd": 1.4,
        "submitted_at": pytest.approx(time.time(), abs=120),
        "image": "frame",
    }
    assert kling_simulator.count("POST /requests") == 1
    sent = kling_simulator.requests[0]
    assert sent.payload["first_frame"] == base64.b64encode(image.read_bytes()).decode()
    assert sent.payload["duration"] == "10"
    assert sent.payload["resolution"] == "1080p"
    logs = "".join(capsys.readouterr())
    assert "estimated cost $1.400" in logs
    assert "PNG image" in logs
    assert sent.payload["first_frame"] not in logs


def test_url_is_sent_as_is(kling_simulator, kling_connection_env, context):
    op(first_frame="https://example.com/a.png").execute(context)
    assert kling_simulator.requests[0].payload["first_frame"] == "https://example.com/a.png"


def test_inline_base64_never_reaches_templated_fields(
    kling_simulator, kling_connection_env, context, png_bytes
):
    b64 = base64.b64encode(png_bytes).decode()
    task = op(first_frame=b64)
    assert b64 not in str(task.first_frame)
    assert "inline image" in str(task.first_frame)
    task.execute(context)
    assert kling_simulator.requests[0].payload["first_frame"] == b64


def test_bytes_are_accepted(kling_simulator, kling_connection_env, context, png_bytes):
    task = op(first_frame=png_bytes)
    assert "inline image" in task.first_frame
    task.execute(context)
    assert kling_simulator.requests[0].payload["first_frame"] == base64.b64encode(png_bytes).decode()


def test_non_image_file_is_refused_without_a_post(kling_simulator, kling_connection_env, context, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(KlingValidationError, match="not a JPEG or PNG"):
        op(first_frame=str(path)).execute(context)
    assert kling_simulator.count("POST /requests") == 0


def test_wait_for_completion_polls_to_the_video(kling_simulator, kling_connection_env, context, image):
    result = op(first_frame=str(image), wait_for_completion=True, poll_interval=0.1).execute(context)
    assert result["status"] == "success"
    assert result["request_id"] == context["ti"].pushed["request_id"]
    assert result["media_urls"]
    assert result["media_urls"][0].startswith(kling_simulator.base_url)


def test_wait_for_completion_raises_the_api_error_text(kling_simulator, kling_connection_env, context, image):
    task = op(
        first_frame=str(image),
        prompt="SIMULATE_FAILURE nsfw content",
        wait_for_completion=True,
        poll_interval=0.1,
    )
    with pytest.raises(KlingRequestFailedError, match="nsfw content"):
        task.execute(context)


def test_deferrable_wait_defers_to_the_trigger_and_resumes(
    kling_simulator, kling_connection_env, context, image
):
    task = op(first_frame=str(image), wait_for_completion=True, deferrable=True, poll_interval=0.1)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, KlingStatusTrigger)
    assert trigger.request_id == context["ti"].pushed["request_id"]
    assert deferred.value.method_name == "execute_complete"
    result = task.execute_complete(
        context,
        event={
            "status": "success",
            "request_id": trigger.request_id,
            "media_urls": ["http://x/v.mp4"],
            "message": "",
        },
    )
    assert result["media_urls"] == ["http://x/v.mp4"]
