"""A video named after its source image: ``{image}`` in a file name, from any task that downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG, ObjectStoragePath

from airflow_provider_kling.api import KlingValidationError, image_stem
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.tasks.ledger import REQUEST_KEY
from airflow_provider_kling.tasks.outputs import output_names

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


class PullingTI:
    """A task instance at ``map_index`` whose upstream tasks pushed XComs, by (task id, map index)."""

    def __init__(self, upstream: dict[tuple[str, int], dict[str, Any]] | None = None, map_index: int = -1):
        self.upstream = upstream or {}
        self.map_index = map_index
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        return self.upstream.get((task_ids, map_indexes), {}).get(key)


@pytest.mark.parametrize(
    ("value", "stem"),
    [
        ("/data/shoes/red_shoe.jpg", "red_shoe"),
        (Path("/data/shoes/blue shoe.PNG"), "blue shoe"),
        ("https://cdn.example.com/p/green.jpeg?v=3#top", "green"),
        (ObjectStoragePath("s3://bucket/products/mug.png"), "mug"),
        (PNG_B64, None),
        ("data:image/png;base64," + PNG_B64, None),
        (b"\x89PNG\r\n\x1a\n", None),
        ("ftp://host/x.png", None),
        (None, None),
    ],
)
def test_the_image_name_is_its_file_name_without_suffix(value, stem):
    assert image_stem(value) == stem


def test_image_fills_in_and_is_sanitised():
    assert output_names("videos/{image}.mp4", "req-1", 1, "blue shoe") == ["videos/blue_shoe.mp4"]
    assert output_names("{image}_{index}.mp4", "req-1", 2, "mug") == ["mug_0.mp4", "mug_1.mp4"]
    # No name known (an inline image): the request id, so the video is still saved.
    assert output_names("{image}.mp4", "req-1", 1, None) == ["req-1.mp4"]


def test_an_unknown_field_names_the_fields_allowed():
    with pytest.raises(KlingValidationError, match=r"Invalid filename: .*Allowed: fields .*\{image\}"):
        output_names("{source}.mp4", "req-1", 1, "mug")


def test_a_submit_names_its_video_after_its_image_and_records_the_name(
    kling_simulator, kling_connection_env, png_bytes, tmp_path
):
    image = tmp_path / "red_shoe.png"
    image.write_bytes(png_bytes)
    ti = PullingTI()
    result = KlingI2VOperator(
        task_id="submit",
        first_frame=str(image),
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
        download_to=str(tmp_path / "videos"),
        download_filename="{image}.mp4",
    ).execute({"ti": ti, "run_id": "r"})
    assert [f["uri"] for f in result["files"]] == [str(tmp_path / "videos" / "red_shoe.mp4")]
    assert (tmp_path / "videos" / "red_shoe.mp4").read_bytes()[4:8] == b"ftyp"
    assert ti.pushed[REQUEST_KEY]["image"] == "red_shoe"


def test_a_download_downstream_takes_the_name_its_submit_recorded(finished, tmp_path):
    with DAG(dag_id="names", schedule=None):
        submit = KlingStatusSensor(task_id="submit", request_id="x")  # stands for any upstream task
        other = KlingStatusSensor(task_id="other", request_id="y")
        task = KlingDownloadVideoOperator(
            task_id="download",
            download_to=str(tmp_path),
            request_id=finished,
            download_filename="{image}.mp4",
        )
        [submit, other] >> task
    ti = PullingTI(
        {
            # Another request's record upstream is not taken for this one, nor another index's.
            ("other", 1): {REQUEST_KEY: {"request_id": "someone-else", "image": "wrong"}},
            ("submit", 0): {REQUEST_KEY: {"request_id": finished["request_id"], "image": "not_mine"}},
            ("submit", 1): {REQUEST_KEY: {"request_id": finished["request_id"], "image": "green_mug"}},
        },
        map_index=1,
    )
    result = task.execute({"ti": ti, "run_id": "r"})
    assert result["uris"] == [str(tmp_path / "green_mug.mp4")]


def test_without_a_recorded_name_the_request_id_stands_in_and_the_log_says_why(
    finished,
    tmp_path,
    capsys,
):
    task = KlingDownloadVideoOperator(
        task_id="download", download_to=str(tmp_path), request_id=finished, download_filename="{image}.mp4"
    )
    result = task.execute({"ti": PullingTI(), "run_id": "r"})
    assert result["uris"] == [str(tmp_path / f"{finished['request_id']}.mp4")]
    assert "No image name is known" in capsys.readouterr().out
