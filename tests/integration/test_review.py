"""The reviewed campaign under ``airflow dags test``: reviews answered through Airflow's HITL route.

``dags test`` keeps a run alive while a review waits in ``awaiting_input`` (Airflow 3.3); the test
answers each review as it appears, with the route the Required Actions page calls, and checks
what the simulator was asked for and what the run ended with. Nothing in Airflow's loop or the
provider kept a run from finishing: the test itself did, by reading ``dags test``'s output only at
the end (see :func:`run_with_answers`). Every run is bounded (``RUN_SECONDS``) and then killed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from airflow import __version__ as airflow_version
from packaging.version import Version

from .conftest import AIRFLOW

HERE = Path(__file__).parent
DAG = "kling_reviewed_campaign"
#: How long one ``dags test`` run may take, answers included (three takes take about two minutes).
RUN_SECONDS = 420
pytestmark = [
    pytest.mark.skipif(
        Version(airflow_version) < Version("3.3.0"),
        reason="dags test waits for a human answer only on Airflow 3.3+ (awaiting_input)",
    ),
    # Above the run's own bound: a stuck run is killed and fails with its log; this is the backstop.
    pytest.mark.timeout(RUN_SECONDS + 120),
]


def run_with_answers(
    airflow_env: dict[str, str],
    simulator: Any,
    answers: list[tuple[str, dict[str, str]]],
    conf: dict[str, Any],
) -> tuple[int, str, Path]:
    """Run the DAG and answer its reviews in order; returns the exit code, the log and the database."""
    connection = {"conn_type": "kling", "host": simulator.base_url, "password": simulator.api_key}
    env = {**airflow_env, "AIRFLOW_CONN_KLING_DEFAULT": json.dumps(connection)}
    home = Path(env["AIRFLOW_HOME"])
    db, log_path = home / "airflow.db", home / "dags-test.log"
    pending = list(answers)
    # The log goes to a file, never a pipe read only at the end: ``dags test`` logs a line a second
    # while a review waits, so a slow answer took it past the pipe's 64 KiB and it blocked on a write.
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [str(AIRFLOW), "dags", "test", DAG, "-c", json.dumps(conf)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + RUN_SECONDS
            while proc.poll() is None and time.monotonic() < deadline:
                waiting = awaiting(db)
                if waiting and pending:
                    answer(env, *waiting[0], *pending.pop(0))
                time.sleep(1)
        finally:  # a failed answer or the test's timeout never leaves ``dags test`` running
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    out = log_path.read_text()
    assert not pending, f"reviews left unanswered: {pending}\n{out[-4000:]}"
    return proc.returncode, out, db


def answer(
    env: dict[str, str], run_id: str, task_id: str, map_index: int, option: str, params: dict[str, str]
) -> None:
    """Answer one review through Airflow's HITL route, in a process of its own as the api-server would."""
    subprocess.run(
        [
            sys.executable,
            str(HERE / "hitl_answer.py"),
            DAG,
            run_id,
            task_id,
            str(map_index),
            option,
            json.dumps({"notes": "", "new_prompt": "", **params}),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def awaiting(db: Path) -> list[tuple[str, str, int]]:
    """The reviews waiting for an answer (only the running test's run has any)."""
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            rows = conn.execute(
                "SELECT run_id, task_id, map_index FROM task_instance WHERE dag_id = ? "
                "AND state = 'awaiting_input' ORDER BY task_id, map_index",
                (DAG,),
            ).fetchall()
    except sqlite3.OperationalError:  # the run holds the database for a moment
        return []
    return [(str(r), str(t), int(m)) for r, t, m in rows]


def states(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (DAG, DAG),
        ).fetchall()
    return {str(t): str(s) for t, s in rows}


def prompts(simulator: Any) -> list[str]:
    return [str(request.payload.get("prompt") or "") for request in simulator.requests]


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=1)
def test_regenerate_twice_then_approve_pays_three_takes_once_each(airflow_env, kling_simulator):
    answers = [
        ("Regenerate", {"notes": "slower camera"}),
        ("Regenerate", {"notes": "warmer light", "new_prompt": "The product turns on a marble plinth"}),
        ("Approve", {}),
    ]
    code, log, db = run_with_answers(airflow_env, kling_simulator, answers, {"count": 1})
    assert code == 0, log[-4000:]
    assert kling_simulator.count("POST /requests") == 3
    sent = prompts(kling_simulator)
    assert "Reviewer notes: slower camera" in sent[1]
    assert sent[2].startswith("The product turns on a marble plinth")
    assert "warmer light" in sent[2]
    assert "Publishing take 3" in log, log[-4000:]
    assert "approved by reviewer" in log
    assert states(db)["review.publish"] == "success"


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=1)
def test_reject_skips_publish_with_the_reason(airflow_env, kling_simulator):
    code, log, db = run_with_answers(airflow_env, kling_simulator, [("Reject", {"notes": "warped box"})], {})
    assert code == 0, log[-4000:]
    assert kling_simulator.count("POST /requests") == 1
    assert "Rejected by reviewer at take 1: warped box" in log, log[-4000:]
    assert states(db)["review.publish"] == "skipped"
    assert states(db)["review.take_2"] == "skipped"


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=1)
def test_the_batch_budget_stops_a_regenerate_before_it_is_paid(airflow_env, kling_simulator):
    # $1.20 pays two 5-second takes ($0.56 each): the second Regenerate is refused, unpaid.
    answers = [("Regenerate", {"notes": "again"}), ("Regenerate", {"notes": "once more"})]
    code, log, db = run_with_answers(airflow_env, kling_simulator, answers, {"max_total_usd": 1.2})
    assert code == 0, log[-4000:]
    assert kling_simulator.count("POST /requests") == 2
    assert "Take 3 not submitted" in log, log[-4000:]
    assert "over its budget" in log
    assert states(db)["review.publish"] == "skipped"
