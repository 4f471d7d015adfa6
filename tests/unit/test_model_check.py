"""GMI's word on each model, against the simulator told to drift: the hook's check, the connection
test, the task's warning and the command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from airflow_provider_kling.api import I2V_MODEL, T2V_MODEL, V3_I2V_MODEL
from airflow_provider_kling.api.model_detail import Difference, ModelCheck
from airflow_provider_kling.hooks import model_check
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.testing import Fault

DETAIL = "GET /models/{id}"
DURATIONS_3_TO_20 = [str(n) for n in range(3, 21)]
#: GMI lets the image-to-video model run to 20 seconds.
LONGER = {I2V_MODEL: {"duration": {"options": DURATIONS_3_TO_20, "max_value": 20}}}
#: GMI no longer offers 1080p.
NO_1080P = {I2V_MODEL: {"resolution": {"options": ["720p"]}}}
WARNING = "on GMI differs from this provider's spec"


@pytest.fixture(autouse=True)
def fresh_process_cache():
    model_check.forget_checks()
    yield
    model_check.forget_checks()


@pytest.fixture
def hook(kling_connection_env):
    hook = KlingHook()
    yield hook
    hook.close()


@pytest.fixture
def quick(monkeypatch):
    """A quick check gives up after half a second, so a hung endpoint costs the tests little."""
    monkeypatch.setattr(model_check, "QUICK_TIMEOUT", 0.5)


# --- the hook's check ----------------------------------------------------------------------------


def test_a_drifted_resolution_list_is_one_difference(kling_simulator, hook):
    kling_simulator.configure(model_drift=NO_1080P)
    assert hook.check_model(I2V_MODEL) == ModelCheck(
        I2V_MODEL, (Difference("resolution", "options", "[720p, 1080p]", "[720p]"),)
    )
    assert hook.check_model(T2V_MODEL).matches  # the drift was the one model's


def test_a_changed_duration_range_names_the_options_and_the_bound(kling_simulator, hook):
    kling_simulator.configure(model_drift=LONGER)
    assert [str(d) for d in hook.check_model(I2V_MODEL).differences] == [
        "duration options: ours [3..15], GMI's [3..20]",
        "duration maximum: ours 15, GMI's 20",
    ]


def test_a_renamed_field_is_one_gone_and_one_new(kling_simulator, hook):
    drift = {V3_I2V_MODEL: {"image": None, "first_frame": {"type": "image", "required": True}}}
    kling_simulator.configure(model_drift=drift)
    assert [str(d) for d in hook.check_model(V3_I2V_MODEL).differences] == [
        "image parameter: ours takes it (required), GMI's does not list it",
        "first_frame parameter: ours does not take it, GMI's lists it (required)",
    ]


def test_a_model_gmi_no_longer_serves_is_missing_not_an_error(kling_simulator, hook):
    kling_simulator.configure(model_drift={T2V_MODEL: None})
    assert hook.check_model(T2V_MODEL) == ModelCheck(T2V_MODEL, served=False)
    assert T2V_MODEL not in hook.list_models()


@pytest.mark.parametrize(
    "fault",
    [Fault(status=503), Fault.non_json(), Fault.connection_reset(), Fault.slow(3)],
    ids=["503", "html 502", "reset", "too slow"],
)
def test_an_unreachable_detail_endpoint_is_a_quick_error_asked_once(kling_simulator, hook, quick, fault):
    kling_simulator.script(DETAIL, [fault, fault])
    started = time.monotonic()
    check = hook.check_model(I2V_MODEL, quick=True)
    assert time.monotonic() - started < 2
    assert check.error is not None
    assert check.served
    assert not check.matches
    assert kling_simulator.count(DETAIL) == 1  # a quick check never retries


def test_a_host_that_refuses_connections_is_an_error(kling_conn, quick):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    kling_conn(host=f"http://127.0.0.1:{port}")
    check = KlingHook().check_model(I2V_MODEL, quick=True)
    assert check.error is not None
    assert "Connection refused" in check.error


def test_a_model_without_a_spec_cannot_be_checked(hook):
    with pytest.raises(
        ValueError, match=r"Invalid model: kling-v2-6 has no spec in this provider\. Allowed: "
    ):
        hook.check_model("kling-v2-6")


def test_the_simulator_checks_a_submit_against_its_drifted_detail(kling_simulator, hook):
    """As GMI does: once 1080p is gone, a payload the provider's spec allows is refused after sending."""
    kling_simulator.configure(model_drift=NO_1080P)
    payload = {"first_frame": "https://example.com/a.png", "resolution": "1080p"}
    with pytest.raises(Exception, match="Backend error"):
        hook.submit(I2V_MODEL, payload)


# --- the connection test -------------------------------------------------------------------------


def test_test_connection_says_for_each_known_model_whether_it_is_served_and_matches(kling_simulator, hook):
    kling_simulator.configure(model_drift={**NO_1080P, V3_I2V_MODEL: None})
    kling_simulator.script(DETAIL, [Fault.slow(0)])  # answered normally: only counted
    ok, message = hook.test_connection()
    assert ok
    assert message.startswith(f"Connected to GMI Cloud at {kling_simulator.base_url}: ")
    assert message.endswith(
        "kling-3.0-turbo-i2v among them. The models this provider knows: kling-3.0-turbo-i2v DIFFERS "
        "from GMI's detail (resolution options); kling-3.0-turbo-t2v matches GMI's detail; "
        "kling-v3-image-to-video NOT served to this key. "
        "`python -m airflow_provider_kling.hooks.model_check` says what differs."
    )
    assert kling_simulator.count(DETAIL) == 2  # one per served model the provider knows
    assert kling_simulator.count("POST /requests") == 0


def test_test_connection_succeeds_when_only_the_details_cannot_be_read(kling_simulator, hook, quick):
    kling_simulator.script(DETAIL, [Fault(status=503)] * 3)
    ok, message = hook.test_connection()
    assert ok
    assert message.count("could not be checked (its detail could not be read)") == 3


# --- the task's warning --------------------------------------------------------------------------


def _submit(context: dict[str, Any], **kwargs: Any) -> str:
    task = KlingI2VOperator(
        task_id="submit", first_frame="https://example.com/a.png", deferrable=False, **kwargs
    )
    return task.execute(context)


class FakeTI:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def test_two_tasks_each_warn_once_from_one_detail_read(kling_simulator, kling_connection_env, capsys):
    kling_simulator.configure(model_drift=LONGER)
    _submit({"ti": FakeTI()})
    first = capsys.readouterr().out
    _submit({"ti": FakeTI()}, duration=6)
    second = capsys.readouterr().out
    for log in (first, second):
        assert log.count(WARNING) == 1, log
        assert "duration maximum: ours 15, GMI's 20" in log
    assert kling_simulator.count(DETAIL) == 1
    assert kling_simulator.count("POST /requests") == 2


def test_a_task_whose_model_matches_says_nothing_and_asks_once(kling_simulator, kling_connection_env, capsys):
    _submit({"ti": FakeTI()})
    _submit({"ti": FakeTI()})
    assert WARNING not in capsys.readouterr().out
    assert kling_simulator.count(DETAIL) == 1


def test_a_task_still_submits_when_the_detail_endpoint_is_down(
    kling_simulator, kling_connection_env, capsys, quick
):
    kling_simulator.script(DETAIL, [Fault.slow(3), Fault.slow(3)])
    started = time.monotonic()
    _submit({"ti": FakeTI()})
    _submit({"ti": FakeTI()})
    assert time.monotonic() - started < 5
    log = capsys.readouterr().out
    assert log.count("Could not check model kling-3.0-turbo-i2v against GMI's model detail") == 2
    assert WARNING not in log
    assert kling_simulator.count(DETAIL) == 1  # the failed read is remembered too, for a while
    assert kling_simulator.count("POST /requests") == 2


def test_a_task_whose_model_gmi_dropped_warns_before_its_submit_fails(
    kling_simulator, kling_connection_env, capsys
):
    kling_simulator.configure(model_drift={I2V_MODEL: None})
    with pytest.raises(Exception, match="404"):
        _submit({"ti": FakeTI()})
    assert "GMI answers that it does not exist (404)" in capsys.readouterr().out


def test_a_model_without_a_spec_is_not_asked_about(kling_simulator, kling_connection_env):
    from airflow_provider_kling.operators.submit import KlingSubmitOperator

    KlingSubmitOperator(task_id="other", model="kling-v2-6", payload={"prompt": "a cat"}).execute(
        {"ti": FakeTI()}
    )
    assert kling_simulator.count(DETAIL) == 0


# --- the command ---------------------------------------------------------------------------------


def test_the_command_exits_0_when_every_model_matches(kling_simulator, kling_connection_env, capsys):
    assert model_check.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{model}: the provider's spec matches GMI's detail."
        for model in (I2V_MODEL, T2V_MODEL, V3_I2V_MODEL)
    ]


def test_the_command_exits_1_and_lists_every_difference(kling_simulator, kling_connection_env, capsys):
    kling_simulator.configure(model_drift={**LONGER, T2V_MODEL: None})
    assert model_check.main(["--conn-id", "kling_default", I2V_MODEL, T2V_MODEL]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "kling-3.0-turbo-i2v: the provider's spec differs from GMI's detail in 2 ways:",
        "  duration options: ours [3..15], GMI's [3..20]",
        "  duration maximum: ours 15, GMI's 20",
        "kling-3.0-turbo-t2v: GMI answers that it does not exist (404): it is no longer served, or not to "
        "this API key; a submit to it would fail.",
    ]


def test_the_command_exits_2_when_it_cannot_check(
    kling_simulator, kling_connection_env, capsys, retry_sleeps
):
    kling_simulator.script(DETAIL, [Fault(status=503)] * 3)
    assert model_check.main([I2V_MODEL]) == 2
    assert "GMI's detail could not be read: GMI answered HTTP 503" in capsys.readouterr().out
    assert model_check.main(["kling-v2-6"]) == 2
    assert "error: Invalid model: kling-v2-6 has no spec in this provider" in capsys.readouterr().err
    assert model_check.main(["--conn-id", "kling_nowhere"]) == 2
    assert "no connection 'kling_nowhere' is defined" in capsys.readouterr().err


def test_the_command_runs_as_documented(kling_simulator):
    connection = {"conn_type": "kling", "host": kling_simulator.base_url, "password": kling_simulator.api_key}
    kling_simulator.configure(model_drift=NO_1080P)
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_kling.hooks.model_check", I2V_MODEL],
        env={"AIRFLOW_CONN_KLING_DEFAULT": json.dumps(connection), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "resolution options: ours [720p, 1080p], GMI's [720p]" in done.stdout
