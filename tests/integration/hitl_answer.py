"""Answer waiting reviews the way Airflow does, in the Airflow home of a ``dags test`` run.

Run as ``python hitl_answer.py`` with ``AIRFLOW_HOME`` set; it reads one JSON request a line on
stdin and writes one JSON line back for each, so Airflow is imported once for a whole run:

* ``{"do": "answer", "dag_id", "run_id", "task_id", "map_index", "option", "params"}``: the
  route the Required Actions page calls (Airflow's ``update_hitl_detail``).
* ``"do": "time_out"``: the review's deadline passes (moved to now), then the scheduler's own
  sweep of ``awaiting_input`` tasks resolves it (the review's defaults, or a failure).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from typing import Any


class Reviewer:
    """The user the route records as the respondent."""

    def get_id(self) -> str:
        return "reviewer"

    def get_name(self) -> str:
        return "reviewer"


def answer(session: Any, req: dict[str, Any]) -> str:
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail

    payload = UpdateHITLDetailPayload(chosen_options=[req["option"]], params_input=req["params"])
    stored = update_hitl_detail(
        dag_id=req["dag_id"],
        dag_run_id=req["run_id"],
        task_id=req["task_id"],
        update_hitl_detail_payload=payload,
        user=Reviewer(),  # type: ignore[arg-type]
        session=session,
        map_index=int(req["map_index"]),
    )
    return stored.model_dump_json()


def task_instance(session: Any, req: dict[str, Any]) -> Any:
    from airflow.models.taskinstance import TaskInstance as TI
    from sqlalchemy import select

    return session.scalar(
        select(TI).where(
            TI.dag_id == req["dag_id"],
            TI.run_id == req["run_id"],
            TI.task_id == req["task_id"],
            TI.map_index == int(req["map_index"]),
        )
    )


def time_out(session: Any, req: dict[str, Any]) -> str:
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.utils import timezone

    ti = task_instance(session, req)
    ti.trigger_timeout = timezone.utcnow() - timedelta(seconds=1)
    session.flush()
    sweeper = SchedulerJobRunner.__new__(SchedulerJobRunner)  # the sweep needs only its logger
    sweeper.check_awaiting_input_timeouts(session=session)
    session.flush()
    return str(task_instance(session, req).state)


def main() -> None:
    from airflow.utils.session import create_session

    logging.disable(logging.WARNING)
    for line in sys.stdin:
        req = json.loads(line)
        with create_session() as session:
            result = time_out(session, req) if req["do"] == "time_out" else answer(session, req)
        print(json.dumps({"done": req["do"], "result": result}), flush=True)


if __name__ == "__main__":
    main()
