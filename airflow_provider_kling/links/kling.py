"""Extra links shown on Kling tasks in the Airflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    from airflow.sdk.execution_time.xcom import XCom

    # Airflow evaluates the links on the worker as every try ends (a deferral and a failure too),
    # and its API client logs "XCom not found" at error level for a key never pushed, which
    # buries the real error. So a running try's links read only what exists: the return value
    # after a success, any other key once counted.
    state = getattr(ti_key, "state", None)
    if state is not None:
        if key == XCom.XCOM_RETURN_KEY:
            if state != "success":
                return None
        elif not _pushed(ti_key, key):
            return None
    return XCom.get_value(ti_key=ti_key, key=key)


def _pushed(ti_key: TaskInstanceKey, key: str) -> bool:
    """Whether the task has an XCom under ``key`` (in any map index), asked without a 404."""
    from airflow.sdk.execution_time.comms import GetXComCount, XComCountResponse
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    ask = GetXComCount(key=key, dag_id=ti_key.dag_id, run_id=ti_key.run_id, task_id=ti_key.task_id)
    answer = SUPERVISOR_COMMS.send(ask)
    return not isinstance(answer, XComCountResponse) or answer.len > 0


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
        value: Any = _xcom(ti_key, "return_value")
        request_id = value.get("request_id") if isinstance(value, dict) else value
        if not request_id:
            request_id = _xcom(ti_key, "request_id")
        if not isinstance(request_id, str) or not request_id:
            return ""
        from urllib.parse import urlencode

        from airflow_provider_kling.plugins.kling import view_href

        query = {"dag_id": ti_key.dag_id, "run_id": ti_key.run_id, "request_id": request_id}
        return f"{view_href()}?{urlencode(query)}"
