"""The local stack's background loops: a step's result sets the wait before the next step."""

from __future__ import annotations

import threading

from archive.local.loop import BackgroundLoop


class Counting(BackgroundLoop):
    def __init__(self, pause: float) -> None:
        super().__init__(interval=0.0)
        self.pause = pause
        self.steps = 0
        self.stepped = threading.Event()
        self.third = threading.Event()

    def step(self) -> int:
        self.steps += 1
        self.stepped.set()
        if self.steps == 3:
            self.third.set()
        return self.steps

    def pause_after(self, result: object) -> float:
        return self.pause


def test_the_wait_a_step_asks_for_comes_before_the_next_step_and_stop_cuts_it_short():
    loop = Counting(pause=600.0)
    loop.start()
    assert loop.stepped.wait(10)

    loop.stop(timeout=10)

    assert loop.steps == 1
    assert loop._thread is not None and not loop._thread.is_alive()


def test_without_a_pause_the_steps_follow_one_another():
    loop = Counting(pause=0.0)
    loop.start()
    followed = loop.third.wait(30)
    loop.stop(timeout=10)

    assert followed and loop.steps >= 3
