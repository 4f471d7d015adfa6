"""A task's cost cap (``max_cost_usd``): priced before the submit, refused over the cap, pushed under it."""

from __future__ import annotations

import pytest

from airflow_provider_kling.exceptions import KlingCostLimitExceeded
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.operators.submit import KlingSubmitOperator


def test_max_cost_refuses_before_submit_and_logs_the_estimate(
    kling_simulator, kling_connection_env, context, png_bytes, capsys
):
    task = KlingI2VOperator(
        task_id="submit", first_frame=png_bytes, resolution="1080p", duration=15, max_cost_usd=2.0
    )
    with pytest.raises(
        KlingCostLimitExceeded, match=r"estimated cost \$2\.100 is over max_cost_usd=\$2\.000"
    ):
        task.execute(context)
    assert kling_simulator.count("POST /requests") == 0
    assert context["ti"].pushed == {}
    assert "Kling request estimated cost $2.100" in "".join(capsys.readouterr())


def test_a_request_within_the_budget_is_submitted_and_its_estimate_pushed(
    kling_simulator, kling_connection_env, context, png_bytes
):
    task = KlingI2VOperator(task_id="submit", first_frame=png_bytes, duration=15, max_cost_usd=2.0)
    request_id = task.execute(context)
    record = context["ti"].pushed.pop("kling_request")
    assert context["ti"].pushed == {"estimated_cost_usd": pytest.approx(1.68), "request_id": request_id}
    assert record["estimated_cost_usd"] == pytest.approx(1.68)


def test_a_model_without_a_price_is_refused_under_a_budget(kling_simulator, kling_connection_env, context):
    task = KlingSubmitOperator(
        task_id="submit", model="kling-v2-6", payload={"prompt": "a fox"}, max_cost_usd=1.0
    )
    with pytest.raises(KlingCostLimitExceeded, match="unknown"):
        task.execute(context)
    assert kling_simulator.count("POST /requests") == 0
