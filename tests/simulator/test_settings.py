"""The simulator's settings: one declaration each, read by Python, the pytest marker, the CLI and the docs."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_kling.testing import KlingSimulator, SimulatorConfig
from airflow_provider_kling.testing.cli import build_parser, main
from airflow_provider_kling.testing.config import ServerSettings, field_names

REPO_ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (*dataclasses.fields(ServerSettings), *dataclasses.fields(SimulatorConfig))

#: A value other than the default for every behaviour setting, as typed on the command line, and
#: what ``GET /_simulator/config`` then says. A new setting fails the test below until it is here.
NON_DEFAULT: dict[str, tuple[str, Any]] = {
    "queued_seconds": ("0.5", 0.5),
    "processing_seconds": ("1.5", 1.5),
    "processing_seconds_max": ("4", 4.0),
    "outcome_shape": ("url,video_url", "url,video_url"),
    "submit_status": ("dispatched", "dispatched"),
    "submit_shape": ("minimal", "minimal"),
    "instant_models": ("kling-v2-6, veo3-fast", ["kling-v2-6", "veo3-fast"]),
    "sync_models": ("*", ["*"]),
    "failure_shape": ("reason_field", "reason_field"),
    "payload_echo": ("absent", "absent"),
    "media_base_url": ("http://media.test", "http://media.test"),
    "media_bytes": ("1000", 1000),
    "media_bytes_per_second": ("2000.5", 2000.5),
    "rate_limit": ("7", 7),
    "rate_limit_seconds": ("30", 30.0),
    "model_drift": (
        '{"kling-3.0-turbo-i2v": {"resolution": {"options": ["720p", "1080p", "4k"]}}, "kling-v2-6": null}',
        {"kling-3.0-turbo-i2v": {"resolution": {"options": ["720p", "1080p", "4k"]}}, "kling-v2-6": None},
    ),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_help_lists_every_setting_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for field in SETTINGS:
        assert _flag(field.name) in shown, field.name
        assert " ".join(field.metadata["help"].split()) in shown, field.name
    assert "(default: 8765)" in shown  # the command line serves on a known port; Python picks a free one


def test_every_setting_given_on_the_command_line_reaches_the_running_simulator() -> None:
    assert set(NON_DEFAULT) == set(field_names(SimulatorConfig))
    defaults = SimulatorConfig().to_dict()
    assert all(expected != defaults[name] for name, (_, expected) in NON_DEFAULT.items())
    command = [sys.executable, "-m", "airflow_provider_kling.testing.simulator", "--port", "0"]
    command += ["--api-key", "cli-settings-key", "--backlog", "16"]
    for name, (text, _) in NON_DEFAULT.items():
        command += [_flag(name), text]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), process.communicate(timeout=30)
        config = requests.get(f"{base_url}/_simulator/config", timeout=10).json()
        models = f"{base_url}/api/v1/ie/requestqueue/apikey/models"
        accepted = requests.get(models, headers={"Authorization": "Bearer cli-settings-key"}, timeout=10)
        refused = requests.get(models, headers={"Authorization": "Bearer sim-test-key"}, timeout=10)
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert config == {name: expected for name, (_, expected) in NON_DEFAULT.items()}
    assert (accepted.status_code, refused.status_code) == (200, 401)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--queued-seconds", "-1"],
            "Invalid queued_seconds: -1 is out of range. Allowed: a number of seconds",
        ),
        (["--rate-limit", "2.5"], "Invalid rate_limit: 2.5 is not a whole number"),
        (["--outcome-shape", "gif"], "Invalid outcome_shape: 'gif' is not a shape. Allowed: rotate, or"),
        (["--port", "70000"], "Invalid port: 70000 is out of range. Allowed: a port number, 0 to 65535"),
        (["--submit-shape", "tiny"], "argument --submit-shape: invalid choice: 'tiny'"),
    ],
)
def test_a_bad_command_line_value_is_a_usage_error_naming_the_setting(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_config_and_settings_by_name_make_one_simulator() -> None:
    shared = SimulatorConfig(queued_seconds=7, outcome_shape="video_url")
    simulator = KlingSimulator(shared, queued_seconds=3, api_key="k", port=0)
    assert simulator.config == dataclasses.replace(shared, queued_seconds=3.0)
    assert (simulator.api_key, simulator.server_settings.port) == ("k", 0)
    assert KlingSimulator(instant_models=["*"]).config.instant_models == frozenset({"*"})


def test_an_unknown_or_bad_setting_is_refused_by_name() -> None:
    with pytest.raises(
        TypeError, match=r"Invalid setting: queued_secs is not a simulator setting\. Allowed: api_key"
    ):
        KlingSimulator(queued_secs=1)
    with pytest.raises(ValueError, match="Invalid backlog: 0 is out of range"):
        KlingSimulator(backlog=0)
    with pytest.raises(ValueError, match="Invalid api_key"):
        KlingSimulator(api_key=" ")
    with pytest.raises(ValueError, match="Invalid access_log: 'yes' is not a boolean"):
        KlingSimulator(access_log="yes")


def test_the_docs_option_table_lists_every_option_of_the_command_line_with_its_default() -> None:
    page = (REPO_ROOT / "docs" / "simulator.rst").read_text()
    table = page.split("Options (``--help`` lists them)", 1)[1].split("What it does", 1)[0]
    documented = dict(re.findall(r"^   \* - ``(--[a-z-]+)``\n     - (.*)$", table, re.MULTILINE))
    actions = [a for a in build_parser()._actions if a.option_strings[0] != "-h"]
    assert set(documented) == {a.option_strings[0] for a in actions}
    for action in actions:
        shown = documented[action.option_strings[0]]
        if action.default in (None, frozenset(), False):
            assert "``" not in shown, action.dest  # "none", "off", "the request's"
        else:
            assert shown == f"``{action.default}``", action.dest


@pytest.mark.parametrize(
    ("drift", "message"),
    [
        ({"kling-9": None}, "Invalid model_drift: 'kling-9' is not a model the simulator serves. Allowed: "),
        ("{not json", "Invalid model_drift: '{not json' is not JSON. Allowed: a JSON object by model id"),
        (["kling-v2-6"], "Invalid model_drift: ['kling-v2-6'] is not an object"),
        ({"kling-v2-6": "gone"}, "Invalid model_drift: kling-v2-6: 'gone' is not an object"),
        (
            {"kling-3.0-turbo-i2v": {"resolution": {"choices": ["720p"]}}},
            "Invalid model_drift: kling-3.0-turbo-i2v: resolution: {'choices': ['720p']} is not a change. "
            "Allowed: a JSON object by model id",
        ),
    ],
)
def test_a_bad_model_drift_is_refused_naming_what_it_allows(drift: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        KlingSimulator(model_drift=drift)


def test_a_model_drift_is_copied_and_none_or_empty_is_no_drift() -> None:
    drift: dict[str, Any] = {"kling-3.0-turbo-i2v": {"resolution": {"options": ["720p"]}}}
    config = SimulatorConfig(model_drift=drift)
    # The caller's object changes, not the config's.
    drift["kling-3.0-turbo-i2v"]["resolution"]["options"].append("4k")
    assert config.model_drift == {"kling-3.0-turbo-i2v": {"resolution": {"options": ["720p"]}}}
    assert SimulatorConfig(model_drift={}).model_drift is None
    assert SimulatorConfig(model_drift="null").model_drift is None
