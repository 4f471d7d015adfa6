"""Extra links shown on Kling tasks in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class KlingVideoLink(BaseOperatorLink):
    """
    "Kling video": opens the first output video of a finished request.

    Airflow evaluates the link on the worker when the task ends and stores it; it is
    empty while no video exists (a submit-only task, a failed request).
    """

    name = "Kling video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(ti_key=ti_key, key="return_value")
        urls = value.get("media_urls") if isinstance(value, dict) else None
        return str(urls[0]) if isinstance(urls, list) and urls else ""
