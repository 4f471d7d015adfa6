"""SIGTERM, SIGINT and SIGHUP stop a deployment before they end the process that started it.

Each component runs in a session of its own, so a signal for the process that started them
(``timeout``'s SIGTERM, a terminal's Ctrl-C or hang-up) reaches none of them; without this,
Python's default for SIGTERM and SIGHUP ends the process at once, ``finally`` blocks unrun, and
the whole deployment is left running, reparented to init. While installed, :class:`StopOnSignals`
runs its ``stop`` first, then does what the signal did before: it calls the previous Python
handler (for SIGINT, ``KeyboardInterrupt``, so pytest and ``try`` blocks see the interrupt they
always did) or, where the default was to die, dies of the same signal, so the shell sees the
conventional status 128 + the signal's number.

A signal the process ignores (``nohup``, a shell's background job) stays ignored. Python lets
only the main thread set handlers; from another thread this does nothing, and the watchdog
(:mod:`devtools.watchdog`) still stops the deployment once the process has gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

_Handler = Callable[[int, FrameType | None], object] | int | None


class StopOnSignals:
    """Run ``stop`` on SIGTERM, SIGINT or SIGHUP, then let the signal take its previous course."""

    def __init__(self, stop: Callable[[], None], what: str) -> None:
        self._stop = stop
        self._what = what
        self._previous: dict[int, _Handler] = {}
        self._active = False
        self._stopping = False
        self._deferring = False
        self._pending: int | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signo in HANDLED:
            previous = signal.getsignal(signo)
            if previous == signal.SIG_IGN:
                continue
            self._previous[signo] = previous
            signal.signal(signo, self._handle)
        self._active = True

    def uninstall(self) -> None:
        """Put the previous handlers back; ours, if someone chained it, only passes signals on."""
        self._active = False
        for signo, previous in self._previous.items():
            # Someone who installed a handler after ours keeps theirs (and may call ours).
            if signal.getsignal(signo) == self._handle:
                signal.signal(signo, previous)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a signal until the block ends: between starting a process and recording it, a
        ``stop`` would not know it."""
        if threading.current_thread() is not threading.main_thread():
            yield  # the handler runs in the main thread: it must not wait for this one
            return
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            pending, self._pending = self._pending, None
            if pending is not None:
                self._handle(pending, None)

    def _handle(self, signo: int, frame: FrameType | None) -> None:
        if self._deferring:
            self._pending = signo
            return
        if self._stopping:
            # A second signal while we stop: finishing the stop matters more. A SIGKILL still
            # ends this process, and the watchdog then finishes the job.
            return
        if self._active:
            self._stopping = True
            name = signal.Signals(signo).name
            print(f"{name} received: stopping the deployment in {self._what} ...", file=sys.stderr)
            try:
                self._stop()
            finally:
                self._stopping = False
        _pass_on(self._previous.get(signo, signal.SIG_DFL), signo, frame)


def _pass_on(previous: _Handler, signo: int, frame: FrameType | None) -> None:
    """Do what the signal would have done without us."""
    if callable(previous):
        previous(signo, frame)
        return
    if previous == signal.SIG_IGN:
        return
    # SIG_DFL, or a handler set outside Python (None): for these three signals, ending the process.
    signal.signal(signo, signal.SIG_DFL)
    os.kill(os.getpid(), signo)
    raise SystemExit(128 + signo)  # not reached: the signal ends the process first
