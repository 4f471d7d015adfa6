"""The reviewed campaign under ``airflow dags test``: reviews answered through Airflow's HITL route.

``dags test`` keeps a run alive while a review waits in ``awaiting_input`` (Airflow 3.3); the test
answers each review as it appears, with the route the Required Actions page calls, and checks
what the simulator was asked for and what the run ended with. One run of four videos covers every
ending a reviewed video can have (see :func:`test_every_way_a_review_ends_in_one_run`): a run of
``dags test`` costs about 20 s before its first task, so the scenarios share one. Nothing in
Airflow's loop or the provider kept a run from finishing: the test itself did, by reading ``dags
test``'s output only at the end (see :func:`run_with_answers`). Every run is bounded
(``RUN_SECONDS``) and then killed.
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
#: How long one ``dags test`` run may take, answers included.
RUN_SECONDS = 420
pytestmark = [
    pytest.mark.skipif(
        Version(airflow_version) < Version("3.3.0"),
        reason="dags test waits for a human answer only on Airflow 3.3+ (awaiting_input)",
    ),
    # Above the run's own bound: a stuck run is killed and fails with its log; this is the backstop.
    pytest.mark.timeout(RUN_SECONDS + 120),
]
#: One answer: the review (task id, map index), what the answerer does, the option and the fields.
Answer = tuple[str, int, str, str, dict[str, str]]


def run_with_answers(
    airflow_env: dict[str, str], simulator: Any, answers: list[Answer], conf: dict[str, Any]
) -> tuple[int, str, Path, list[str]]:
    """
    Run the DAG and give the answers strictly in order, each once its review waits (so which take
    meets the budget first is decided by the test, not by timing). Returns the exit code, the
    log, the database and what the answerer reported for each answer.
    """
    connection = {"conn_type": "kling", "host": simulator.base_url, "password": simulator.api_key}
    env = {
        **airflow_env,
        "AIRFLOW_CONN_KLING_DEFAULT": json.dumps(connection),
        "KLING_REVIEW_POLL_SECONDS": "0.3",
    }
    home = Path(env["AIRFLOW_HOME"])
    db, log_path = home / "airflow.db", home / "dags-test.log"
    pending, reports = list(answers), []
    # The log goes to a file, never a pipe read only at the end: ``dags test`` logs a line a second
    # while a review waits, so a slow answer took it past the pipe's 64 KiB and it blocked on a write.
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [str(AIRFLOW), "dags", "test", DAG, "-c", json.dumps(conf)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        # One answerer for the whole run: Airflow is imported once, not once per answer.
        answerer = subprocess.Popen(
            [sys.executable, str(HERE / "hitl_answer.py")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + RUN_SECONDS
            while proc.poll() is None and time.monotonic() < deadline:
                waiting = {(task_id, index): run_id for run_id, task_id, index in awaiting(db)}
                if pending and (run_id := waiting.get(pending[0][:2])):
                    task_id, index, do, option, params = pending.pop(0)
                    request = {"do": do, "dag_id": DAG, "run_id": run_id, "task_id": task_id}
                    request |= {"map_index": index, "option": option}
                    request["params"] = {"notes": "", "new_prompt": "", **params}
                    reports.append(ask(answerer, request))
                time.sleep(0.3)
        finally:  # a failed answer or the test's timeout never leaves a process running
            for running in (proc, answerer):
                if running.poll() is None:
                    running.kill()
                running.wait()
    out = log_path.read_text()
    assert not pending, f"reviews left unanswered: {pending}\n{out[-4000:]}"
    return proc.returncode, out, db, reports


def ask(answerer: subprocess.Popen[str], request: dict[str, Any]) -> str:
    """Send the answerer one request; its reply, past the lines Airflow's own log writes."""
    assert answerer.stdin is not None
    assert answerer.stdout is not None
    answerer.stdin.write(json.dumps(request) + "\n")
    answerer.stdin.flush()
    while line := answerer.stdout.readline():
        if line.startswith('{"done"'):
            return str(json.loads(line)["result"])
    raise AssertionError(f"the answerer ended without answering {request}")


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


def states(db: Path) -> dict[tuple[str, int], tuple[str, int]]:
    """Each task instance of the latest run: its state and try number."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (DAG, DAG),
        ).fetchall()
    return {(str(t), int(m)): (str(s), int(n)) for t, m, s, n in rows}


def prompts(simulator: Any) -> list[str]:
    return [str(request.payload.get("prompt") or "") for request in simulator.requests]


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=0.3)
def test_every_way_a_review_ends_in_one_run(airflow_env, kling_simulator):
    """
    Four videos, a budget of eight takes ($4.60 at $0.56 a take):

    * video 0: Regenerate, Regenerate with a new prompt, Approve: three takes, publish gets take 3;
    * video 1: Regenerate, Regenerate, Reject at take 3 of 3 (max_takes reached);
    * video 2: Regenerate when the batch has paid for eight takes: the ninth is refused, unpaid;
    * video 3: nobody answers, and the review's timeout rejects it.
    """
    review_1, review_2, review_3 = "review.review_1", "review.review_2", "review.review_3"
    answers: list[Answer] = [
        (review_1, 1, "answer", "Regenerate", {"notes": "more light"}),
        (review_1, 0, "answer", "Regenerate", {"notes": "slower camera"}),
        (review_1, 3, "time_out", "", {}),
        (review_2, 1, "answer", "Regenerate", {"notes": "again"}),
        (review_2, 0, "answer", "Regenerate", {"notes": "warmer light", "new_prompt": "On a marble plinth"}),
        (review_3, 1, "answer", "Reject", {"notes": "still warped"}),
        (review_3, 0, "answer", "Approve", {}),
        (review_1, 2, "answer", "Regenerate", {"notes": "once more"}),
    ]
    code, log, db, reports = run_with_answers(
        airflow_env, kling_simulator, answers, {"count": 4, "max_total_usd": 4.6}
    )
    assert code == 0, log[-4000:]
    ended = states(db)
    # Each take paid once: eight takes, eight requests, whatever was retried.
    assert kling_simulator.count("POST /requests") == 8
    sent = prompts(kling_simulator)

    # Video 0: each Regenerate's notes (and new prompt) reached the next take.
    assert ended[(review_1, 0)] == ("success", 1)
    assert any("Reviewer notes: slower camera" in p for p in sent), sent
    assert any(p.startswith("On a marble plinth") and "warmer light" in p for p in sent), sent
    assert "Publishing take 3" in log, log[-4000:]
    assert "approved by reviewer" in log
    assert ended[("review.publish", 0)][0] == "success"

    # Video 1: the last take offers no Regenerate; its Reject says so.
    assert "Rejected by reviewer at take 3 of 3 (max_takes reached): still warped" in log
    assert ended[("review.publish", 1)][0] == "skipped"

    # Video 2: the batch's budget refused the ninth take before anything was paid.
    assert "Take 2 not submitted" in log, log[-4000:]
    assert "over its budget" in log
    assert ended[("review.take_2", 2)][0] == "skipped"
    assert ended[("review.publish", 2)][0] == "skipped"

    # Video 3: the review's deadline passed; the scheduler's sweep applied its default, Reject.
    assert reports[2] == "scheduled", reports
    assert "Take 1 was not reviewed in time: the review's timeout chose Reject" in log
    assert ended[("review.take_2", 3)][0] == "skipped"
    assert ended[("review.publish", 3)][0] == "skipped"
