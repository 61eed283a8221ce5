"""A daemon thread that repeats one step until stopped: the shape of the worker and the sweeper.

A step that raises is logged and the loop goes on after a pause: the local stack outlives a hiccup
of its own server, as AWS's pollers outlive one of theirs.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)


class BackgroundLoop:
    """Subclasses define `step()`; `interval` is the wait before each step (or `pause_after` of the
    step before, where a step's result tells how soon the next is worth running), `error_pause` the
    extra wait after a failed one."""

    thread_name = "background-loop"

    def __init__(self, *, interval: float = 0.0, error_pause: float = 0.0) -> None:
        self.interval = interval
        self.error_pause = error_pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> object:
        raise NotImplementedError

    def pause_after(self, result: object) -> float:
        """The wait before the next step, given what this one returned."""
        return self.interval

    def run(self) -> None:
        """Repeat `step()` until `stop()`."""
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                wait = self.pause_after(self.step())
            except Exception:  # noqa: BLE001 - logged; the next step tries again
                if self._stop.is_set():
                    break
                logger.exception("%s: step failed; trying again", self.thread_name)
                wait = self.interval
                self._stop.wait(self.error_pause)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Let the step in hand finish (never abandon a half-processed batch), then return."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
