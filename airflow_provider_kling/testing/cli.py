"""The simulator's command line (``python -m ...testing.simulator``), made from its settings' declarations."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_kling.testing.config import ServerSettings, SimulatorConfig
from airflow_provider_kling.testing.simulator import KlingSimulator


def _model_list(text: str) -> frozenset[str]:
    return frozenset(model.strip() for model in text.split(",") if model.strip())


def _add_setting(group: argparse._ArgumentGroup, field: dataclasses.Field[object]) -> None:
    """One option per settings field: ``--queued-seconds`` for ``queued_seconds``, its help and default.

    Values stay text for the field's own check to read, which then names the setting and what it
    allows; only a set of models and a flag need reading first.
    """
    default = field.metadata.get("cli_default", field.default)
    help_text = field.metadata["help"].replace("%", "%%")
    flag = "--" + field.name.replace("_", "-")
    if isinstance(default, bool):
        group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        return
    if default not in (None, frozenset()):
        help_text += " (default: %(default)s)"
    if isinstance(default, frozenset):
        group.add_argument(flag, default=default, type=_model_list, metavar="MODEL,...", help=help_text)
        return
    group.add_argument(flag, default=default, choices=field.metadata["choices"], help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: an option for every field of the two settings classes."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_kling.testing.simulator",
        description="Serve a local GMI request-queue simulator. Prints the base URL, then serves until "
        "SIGTERM or Ctrl+C. Tests can drive it through the unauthenticated /_simulator/ control API.",
    )
    server = parser.add_argument_group("server")
    for field in dataclasses.fields(ServerSettings):
        _add_setting(server, field)
    behaviour = parser.add_argument_group("behaviour (changeable while serving: POST /_simulator/config)")
    for field in dataclasses.fields(SimulatorConfig):
        _add_setting(behaviour, field)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = build_parser()
    try:
        simulator = KlingSimulator(**vars(parser.parse_args(argv)))
    except ValueError as exc:  # a setting's own check: it names the setting and what it allows
        parser.error(str(exc))
    server = simulator.server_settings
    logging.basicConfig(
        level=server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        simulator.start()
    except (OSError, RuntimeError) as exc:
        print(f"error: cannot serve on {server.host}:{server.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(simulator.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
    return 0
