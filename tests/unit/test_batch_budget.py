"""A batch budget: the whole batch is priced and refused before any submit when over its cap."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.api.budget import price_batch
from airflow_provider_kling.exceptions import KlingCostLimitExceeded
from airflow_provider_kling.operators.budget import KlingBudgetOperator


class TI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def run(task: KlingBudgetOperator) -> tuple[Any, dict[str, Any]]:
    ti = TI()
    return task.execute({"ti": ti}), ti.pushed  # type: ignore[arg-type]


def test_500_images_at_0_56_each_are_refused_with_total_cap_and_count(kling_simulator):
    images = [f"/data/img_{i}.png" for i in range(500)]
    task = KlingBudgetOperator(
        task_id="budget", requests=images, defaults={"resolution": "720p", "duration": 5}, max_total_usd=200
    )
    with pytest.raises(KlingCostLimitExceeded) as err:
        run(task)
    message = str(err.value)
    assert "$280.000" in message
    assert "max_total_usd=$200.000" in message
    assert "500 requests" in message
    assert kling_simulator.count("POST /requests") == 0


def test_a_batch_within_its_cap_passes_its_requests_on_and_records_its_price():
    images = (f"/data/img_{i}.png" for i in range(20))
    task = KlingBudgetOperator(
        task_id="budget", requests=images, defaults={"resolution": "720p", "duration": 5}, max_total_usd=11.2
    )
    passed, pushed = run(task)
    assert passed == [f"/data/img_{i}.png" for i in range(20)]
    assert pushed["batch_cost"] == {"count": 20, "total_usd": pytest.approx(11.2), "max_total_usd": 11.2}


def test_each_request_is_priced_with_its_own_arguments_as_the_operators_price_it():
    requests = [
        {"resolution": "1080p", "duration": 10},  # 1.40
        {"first_frame": "a.png"},  # the defaults: 720p, 5 s -> 0.56
        {"model": "kling-3.0-turbo-t2v", "payload": {"prompt": "a fox", "duration": "3"}},  # 0.336
    ]
    assert price_batch(requests, "kling-3.0-turbo-i2v").total_usd == pytest.approx(1.4 + 0.56 + 0.336)


def test_a_model_without_a_price_cannot_pass_a_budget():
    task = KlingBudgetOperator(
        task_id="budget", requests=[{"duration": 5}, {"model": "kling-v2-6"}], max_total_usd=100
    )
    with pytest.raises(KlingCostLimitExceeded, match=r"1 of its 2 requests \(positions 1\)"):
        run(task)


@pytest.mark.parametrize(
    ("requests", "field"),
    [
        ([{"duration": 5}, {"duration": 99}], "requests\\[1\\].duration"),
        ([{"resolution": "4k"}], "requests\\[0\\].resolution"),
    ],
)
def test_a_bad_request_is_named_by_its_position(requests, field):
    with pytest.raises(KlingValidationError, match=f"Invalid {field}"):
        price_batch(requests, "kling-3.0-turbo-i2v")


@pytest.mark.parametrize("cap", [-1, "ten", True, float("nan"), "inf"])
def test_a_cap_that_is_not_a_number_of_usd_fails_when_the_dag_is_parsed(cap):
    with pytest.raises(ValueError, match="Invalid max_total_usd"):
        KlingBudgetOperator(task_id="budget", requests=[], max_total_usd=cap)


def test_a_templated_cap_is_checked_once_rendered():
    images = [f"/data/img_{i}.png" for i in range(100)]
    task = KlingBudgetOperator(task_id="budget", requests=images, max_total_usd="{{ params.cap }}")
    task.max_total_usd = "56.0"  # what Airflow renders from params={"cap": 56.0}
    assert run(task)[1]["batch_cost"]["max_total_usd"] == 56.0
    task.max_total_usd = "55.9"
    with pytest.raises(KlingCostLimitExceeded, match=r"\$55\.900"):
        run(task)
    task.max_total_usd = "lots"
    with pytest.raises(ValueError, match="Invalid max_total_usd: 'lots'"):
        run(task)


def test_requests_that_are_not_a_list_are_refused():
    with pytest.raises(ValueError, match="Invalid requests: a str is not a list"):
        run(KlingBudgetOperator(task_id="budget", requests="a.png", max_total_usd=1))
