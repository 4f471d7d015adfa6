"""Where a Kling task started in the triggerer finds its request id: where a worker would have.

The triggerer of Airflow 3.3 gives a trigger its task (as the scheduler serialized it) and a
template context; :func:`request_id_of` reads the task's ``request_id`` from them: rendered, or
for a mapped sensor this map index's value. Every shape only a worker can unmap raises
``LookupError`` with the reason, and the task goes to a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The arguments the wait or its end depends on besides the request id: mapped (a timeout per
#: image, say), they send the task to a worker, which unmaps it; the trigger reads only
#: ``request_id`` per map index.
WAIT_ARGUMENTS = frozenset(
    {
        "kling_conn_id",
        "timeout",
        "poke_interval",
        "max_poll_failures",
        "cancel_on_kill",
        "deferrable",
        "mode",
        "soft_fail",
        "start_from_trigger",
        "download_to",
        "outlets",
    }
)


class OneValuePulls:
    """
    The task instance a template sees in the triggerer: an ``xcom_pull`` without
    ``map_indexes`` reads the calling map index's value, as Airflow documents for one task id.

    Airflow 3.3.2's triggerer serves a read of one XCom (``GetXCom``) but not of every map
    index (``GetXComSequenceSlice``, which an ``xcom_pull`` without ``map_indexes`` sends, as
    ``str(submit.output)`` does): its supervisor logs "Unable to decode message" and never
    answers, so the trigger would wait, unseen, until the task's timeout.
    """

    def __init__(self, ti: Any) -> None:
        self._ti = ti

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)

    def xcom_pull(self, *args: Any, map_indexes: Any = None, **kwargs: Any) -> Any:
        index = self._ti.map_index if map_indexes is None else map_indexes
        return self._ti.xcom_pull(*args, map_indexes=index, **kwargs)


def request_id_of(task: Any, context: Context, render: Any) -> Any:
    """
    The request id a task started in the triggerer waits for, found as a worker would: its
    rendered ``request_id``, or for a mapped task the value of this map index.

    :raises LookupError: a shape only a worker resolves (``expand_kwargs``, a ``.map()``/``.zip()``
        of XComs, another mapped argument).
    """
    if task is None:
        raise LookupError("the triggerer gave this trigger no task")
    expand_input = getattr(task, "expand_input", None)
    if expand_input is None:
        return render(task.request_id)
    mapped = getattr(expand_input, "value", None)
    if not isinstance(mapped, Mapping):
        raise LookupError(f"its arguments are mapped as {type(expand_input).__name__}")
    others = sorted(set(mapped) & WAIT_ARGUMENTS)
    if others:
        raise LookupError(f"mapped argument(s) {', '.join(others)} are unmapped on a worker")
    if "request_id" not in mapped:
        return render(task.partial_kwargs.get("request_id"))
    ti = context["ti"]
    index = int(ti.map_index if ti.map_index is not None else -1)
    source = mapped["request_id"]
    if isinstance(source, list | tuple):
        if not 0 <= index < len(source):
            raise LookupError(f"request_id has no value for map index {index}")
        return render(source[index])
    upstream = getattr(source, "operator", None)
    # Only a plain XComArg (``submit.output``) names one upstream; .map(), .zip() and .concat() do not.
    if not type(source).__name__.endswith("PlainXComArg") or upstream is None:
        raise LookupError(f"request_id is mapped over a {type(source).__name__}")
    key = getattr(source, "key", "return_value")
    if getattr(upstream, "is_mapped", False):
        # Map index i of this task waits for what map index i of the mapped upstream returned.
        return ti.xcom_pull(task_ids=upstream.task_id, key=key, map_indexes=index)
    values = ti.xcom_pull(task_ids=upstream.task_id, key=key, map_indexes=-1)
    if not isinstance(values, list | tuple) or not 0 <= index < len(values):
        raise LookupError(f"{upstream.task_id} returned no value for map index {index}")
    return values[index]


__all__ = ["WAIT_ARGUMENTS", "OneValuePulls", "request_id_of"]
