"""Extra links shown on Kling tasks in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    from airflow.sdk.execution_time.xcom import XCom

    return XCom.get_value(ti_key=ti_key, key=key)


class KlingVideoLink(BaseOperatorLink):
    """
    "Kling video": opens the first output video of a finished request.

    Airflow evaluates the link on the worker when the task ends and stores it; it is
    empty while no video exists (a submit-only task, a failed request).
    """

    name = "Kling video"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value: Any = _xcom(ti_key, "return_value")
        urls = value.get("media_urls") if isinstance(value, dict) else None
        return str(urls[0]) if isinstance(urls, list) and urls else ""


class KlingRequestLink(BaseOperatorLink):
    """
    "Kling request": the request in the Kling videos view (its video, status, error and cost).

    The view is the provider's UI plugin, behind the same login as the rest of the UI; GMI's
    own record of the request needs the API key, which a browser must never hold. Empty until
    the task has pushed a request id.
    """

    name = "Kling request"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        request_id: Any = _xcom(ti_key, "request_id")
        if not request_id:
            value: Any = _xcom(ti_key, "return_value")
            request_id = value.get("request_id") if isinstance(value, dict) else value
        if not isinstance(request_id, str) or not request_id:
            return ""
        from urllib.parse import urlencode

        from airflow_provider_kling.plugins.kling import view_href

        query = {"dag_id": ti_key.dag_id, "run_id": ti_key.run_id, "request_id": request_id}
        return f"{view_href()}?{urlencode(query)}"
