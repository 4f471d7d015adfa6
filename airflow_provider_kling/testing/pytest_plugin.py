"""Pytest fixtures for testing Kling DAGs and code offline, against a local GMI simulator.

The plugin is registered automatically (``pytest11`` entry point ``kling``) when
``airflow-provider-kling`` is installed, so the fixtures below are available in every test without
any import. Nothing leaves the machine: the simulator listens on 127.0.0.1 only.

Example::

    def test_my_dag_generates_a_video(kling_connection_env, kling_simulator):
        dag.test()  # the Kling tasks talk to the simulator through ``kling_default``
        assert kling_simulator.count("POST /requests") == 1

    @pytest.mark.kling_simulator(outcome_shape="video_url", processing_seconds=1.0)
    def test_with_other_settings(kling_simulator): ...

    @pytest.mark.kling_simulator(SimulatorConfig(instant_models={"*"}))
    def test_with_a_shared_config(kling_simulator): ...

Make a request fail by putting ``SIMULATE_FAILURE: your message`` in its prompt (or calling
``kling_simulator.fail_next("message")``); ``SIMULATE_CANCEL`` ends it ``cancelled`` and
``SIMULATE_STUCK`` keeps it ``queued`` forever. Script HTTP-level trouble (rate limits, 503s, resets,
slow answers) with ``kling_simulator.script(route, [Fault...])``; see
:class:`airflow_provider_kling.testing.Fault`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_kling.testing.simulator import KlingSimulator

#: Timings that keep tests fast while still passing through ``queued`` and ``processing``.
FAST_TIMINGS = {"queued_seconds": 0.2, "processing_seconds": 0.3}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "kling_simulator(config=None, **settings): KlingSimulator arguments for the kling_simulator "
        "fixture: a SimulatorConfig and/or settings by name, e.g. outcome_shape='video_url', "
        "queued_seconds=0.5, instant_models=['kling-3.0-turbo-i2v']",
    )


@pytest.fixture
def kling_simulator(request: pytest.FixtureRequest) -> Iterator[KlingSimulator]:
    """A running GMI request-queue simulator, fresh for each test.

    Requests spend 0.2 s ``queued`` and 0.3 s ``processing``, then succeed with a downloadable MP4;
    the outcome's shape rotates through the shapes GMI is known to return. Give any
    :class:`~airflow_provider_kling.testing.KlingSimulator` argument with the
    ``@pytest.mark.kling_simulator(...)`` marker: a
    :class:`~airflow_provider_kling.testing.config.SimulatorConfig` (used as it is, its timings
    included) and settings by name. Useful attributes: ``base_url``, ``api_key``,
    ``requests`` (what was submitted, with headers), ``count(route)``, ``script(route, faults)``,
    ``fail_next(message)``.
    """
    from airflow_provider_kling.testing.simulator import KlingSimulator

    marker = request.node.get_closest_marker("kling_simulator")
    args, settings = (marker.args, marker.kwargs) if marker else ((), {})
    # A config the test gives says its own timings; settings by name go over the fast ones.
    options = settings if args or "config" in settings else {**FAST_TIMINGS, **settings}
    with KlingSimulator(*args, **options) as simulator:
        yield simulator


@pytest.fixture
def kling_connection_env(kling_simulator: KlingSimulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point Airflow's ``kling_default`` connection at the ``kling_simulator`` of this test.

    Sets the ``AIRFLOW_CONN_KLING_DEFAULT`` environment variable (restored after the test) to a JSON
    connection with ``conn_type`` ``kling``, ``host`` the simulator's base URL and ``password`` its API
    key, and returns those fields. Use ``kling_simulator`` in the same test to inspect what was sent.
    """
    connection = {"conn_type": "kling", "host": kling_simulator.base_url, "password": kling_simulator.api_key}
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(connection))
    return connection
