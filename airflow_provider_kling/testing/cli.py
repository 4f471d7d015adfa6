"""The simulator's command line: ``python -m airflow_provider_kling.testing.simulator``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from airflow_provider_kling.testing.config import DEFAULT_OUTCOME_SHAPE, SimulatorConfig
from airflow_provider_kling.testing.simulator import KlingSimulator
from airflow_provider_kling.testing.wire import (
    FAILURE_SHAPES,
    PAYLOAD_ECHOES,
    SUBMIT_SHAPES,
    SUBMIT_STATUSES,
)


def _model_list(text: str) -> list[str]:
    return [model.strip() for model in text.split(",") if model.strip()]


def _outcome_shape(text: str) -> str:
    # SimulatorConfig knows what is valid; argparse turns its ValueError into a usage error.
    SimulatorConfig(outcome_shape=text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_kling.testing.simulator",
        description="Serve a local GMI request-queue simulator. Prints the base URL, then serves until "
        "SIGTERM or Ctrl+C. Tests can drive it through the unauthenticated /_simulator/ control API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument("--api-key", default="sim-test-key", help="accepted API key (default: %(default)s)")
    parser.add_argument("--queued-seconds", type=float, default=1.0)
    parser.add_argument("--processing-seconds", type=float, default=2.0)
    parser.add_argument(
        "--processing-seconds-max", type=float, default=None, help="draw each request's time up to this"
    )
    parser.add_argument(
        "--outcome-shape",
        type=_outcome_shape,
        default=DEFAULT_OUTCOME_SHAPE,
        help="a shape, rotate (all of them), or comma-separated shapes to cycle (default: %(default)s)",
    )
    parser.add_argument("--submit-status", choices=SUBMIT_STATUSES, default="queued")
    parser.add_argument("--submit-shape", choices=SUBMIT_SHAPES, default="standard")
    parser.add_argument("--failure-shape", choices=FAILURE_SHAPES, default="outcome_object")
    parser.add_argument("--payload-echo", choices=PAYLOAD_ECHOES, default="verbatim")
    parser.add_argument(
        "--instant-models", default="", help="comma-separated models answering at once; * = all"
    )
    parser.add_argument(
        "--sync-models",
        default="",
        help="comma-separated models answering {status: success} with no outcome at once; * = all",
    )
    parser.add_argument("--media-base-url", default=None, help="base of media URLs (default: the request's)")
    parser.add_argument("--media-bytes", type=int, default=None, help="serve every video as this many bytes")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="accept at most this many submits per --rate-limit-seconds",
    )
    parser.add_argument("--rate-limit-seconds", type=float, default=60.0)
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="warning")
    parser.add_argument("--access-log", action="store_true", help="log one line per request (no headers)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    simulator = KlingSimulator(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        queued_seconds=args.queued_seconds,
        processing_seconds=args.processing_seconds,
        processing_seconds_max=args.processing_seconds_max,
        outcome_shape=args.outcome_shape,
        submit_status=args.submit_status,
        instant_models=_model_list(args.instant_models),
        sync_models=_model_list(args.sync_models),
        submit_shape=args.submit_shape,
        failure_shape=args.failure_shape,
        payload_echo=args.payload_echo,
        media_base_url=args.media_base_url,
        media_bytes=args.media_bytes,
        rate_limit=args.rate_limit,
        rate_limit_seconds=args.rate_limit_seconds,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    try:
        simulator.start()
    except (OSError, RuntimeError) as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        print(simulator.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        simulator.stop()
    return 0
