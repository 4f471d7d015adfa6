"""Answer a waiting review the way the Required Actions page does: through Airflow's own HITL route.

Run as ``python hitl_answer.py <dag_id> <run_id> <task_id> <map_index> <option> <params json>``
in the Airflow home of the run (``AIRFLOW_HOME``); prints the answer Airflow stored.
"""

from __future__ import annotations

import json
import sys


class Reviewer:
    """The user the route records as the respondent."""

    def get_id(self) -> str:
        return "reviewer"

    def get_name(self) -> str:
        return "reviewer"


def main(argv: list[str]) -> None:
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    dag_id, run_id, task_id, map_index, option, params = argv
    payload = UpdateHITLDetailPayload(chosen_options=[option], params_input=json.loads(params))
    with create_session() as session:
        answer = update_hitl_detail(
            dag_id=dag_id,
            dag_run_id=run_id,
            task_id=task_id,
            update_hitl_detail_payload=payload,
            user=Reviewer(),  # type: ignore[arg-type]
            session=session,
            map_index=int(map_index),
        )
    print(answer.model_dump_json())


if __name__ == "__main__":
    main(sys.argv[1:])
