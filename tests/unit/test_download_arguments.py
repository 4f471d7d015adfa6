"""Download arguments named ``download_<what>`` on every task; the old names still work, with a warning."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.operators.submit import KlingSubmitOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

NEW = {"download_filename": "{request_id}.mp4", "download_conn_id": "aws_default", "download_max_bytes": 1000}


def deprecations(build: Any) -> tuple[Any, list[str]]:
    """The task ``build`` makes, and the DeprecationWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = build()
    return task, [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]


def test_the_download_operators_old_names_warn_once_each_and_mean_the_new_ones(tmp_path):
    task, said = deprecations(
        lambda: KlingDownloadVideoOperator(
            task_id="d",
            request_id="r",
            destination=str(tmp_path),
            filename="{request_id}.mp4",
            destination_conn_id="aws_default",
            max_bytes=1000,
        )
    )
    assert sorted(said) == [
        "KlingDownloadVideoOperator: destination is deprecated; use download_to",
        "KlingDownloadVideoOperator: destination_conn_id is deprecated; use download_conn_id",
        "KlingDownloadVideoOperator: filename is deprecated; use download_filename",
        "KlingDownloadVideoOperator: max_bytes is deprecated; use download_max_bytes",
    ]
    new, quiet = deprecations(
        lambda: KlingDownloadVideoOperator(task_id="d", request_id="r", download_to=str(tmp_path), **NEW)
    )
    assert quiet == []
    assert task.download_spec() == new.download_spec()
    assert task.download_spec().to == str(tmp_path)


@pytest.mark.parametrize(
    "build",
    [
        lambda **kw: KlingSubmitOperator(task_id="t", model="m", wait_for_completion=True, **kw),
        lambda **kw: KlingI2VOperator(task_id="t", first_frame="a.png", wait_for_completion=True, **kw),
        lambda **kw: KlingStatusSensor(task_id="t", request_id="r", **kw),
    ],
    ids=["submit", "i2v", "sensor"],
)
def test_the_waiting_tasks_old_size_cap_warns_once_and_caps_the_download(build, tmp_path):
    task, said = deprecations(lambda: build(download_to=str(tmp_path), max_download_bytes=1000))
    # Once, though KlingI2VOperator hands its arguments to KlingSubmitOperator.
    assert said == [f"{type(task).__name__}: max_download_bytes is deprecated; use download_max_bytes"]
    assert task.download_spec().max_bytes == 1000
    with (
        pytest.raises(KlingValidationError, match=r"^Invalid download_max_bytes: "),
        pytest.warns(DeprecationWarning, match="use download_max_bytes"),
    ):
        build(download_to=str(tmp_path), max_download_bytes=float("nan"))


def test_an_old_name_given_with_its_new_one_is_refused(tmp_path):
    with pytest.raises(
        ValueError, match=r"^Invalid max_download_bytes: given together with download_max_bytes"
    ):
        KlingStatusSensor(task_id="t", request_id="r", max_download_bytes=10, download_max_bytes=20)
    with pytest.raises(ValueError, match=r"^Invalid destination: given together with download_to"):
        KlingDownloadVideoOperator(task_id="d", request_id="r", destination="a", download_to="b")


def test_a_download_operator_without_a_folder_says_which_argument_is_missing():
    with pytest.raises(ValueError, match=r"^Invalid download_to: missing\. Allowed: "):
        KlingDownloadVideoOperator(task_id="d", request_id="r")


def test_the_old_names_work_in_a_mapped_download_too(tmp_path):
    with DAG("d", schedule=None):
        mapped = KlingDownloadVideoOperator.partial(task_id="download", destination=str(tmp_path)).expand(
            request_id=["r1", "r2"]
        )
    task, said = deprecations(lambda: mapped.unmap({"request_id": "r1"}))
    assert said == ["KlingDownloadVideoOperator: destination is deprecated; use download_to"]
    assert Path(task.download_spec().to) == tmp_path


def test_the_old_names_still_download_the_video(finished, context, tmp_path):
    task, said = deprecations(
        lambda: KlingDownloadVideoOperator(
            task_id="download", request_id=finished, destination=str(tmp_path), filename="{index}.mp4"
        )
    )
    assert len(said) == 2
    result = task.execute(context)
    assert [Path(f["uri"]).name for f in result["files"]] == ["0.mp4"]
    assert (tmp_path / "0.mp4").stat().st_size == result["files"][0]["size"] > 0
