"""A long ordered run: bounded threads, phases in order, and a checkpoint that survives Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest

from archive.cli.resumable import Checkpoint, Interrupted, run_ordered

ITEMS = [f"{phase}/{n:03d}" for phase in (0, 1) for n in range(40)]  # positions sort in processing order


def identity(item: str) -> str:
    return item


def phase(item: str) -> str:
    return item[0]


class Recorder:
    """The work: records what ran, and how many ran at the same moment."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.lock = threading.Lock()
        self.ran: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.phases_seen_while_running: list[set[str]] = []
        self.interrupt_after = interrupt_after
        self.active: set[str] = set()

    def __call__(self, chunk: list[str]) -> Counter[str]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.active.update(chunk)
            self.phases_seen_while_running.append({phase(i) for i in self.active})
        try:
            threading.Event().wait(0.002)  # long enough for threads to overlap
            with self.lock:
                self.ran.extend(chunk)
                if self.interrupt_after is not None and len(self.ran) >= self.interrupt_after:
                    self.interrupt_after = None
                    signal.raise_signal(signal.SIGINT)  # as Ctrl-C in a terminal: KeyboardInterrupt in main
            return Counter(done=len(chunk))
        finally:
            with self.lock:
                self.running -= 1
                self.active.difference_update(chunk)


def test_every_item_runs_once_with_no_more_threads_than_asked_and_phases_never_overlap():
    work = Recorder()

    counts = run_ordered(ITEMS, work, position=identity, phase=phase, workers=3)

    assert sorted(work.ran) == ITEMS
    assert counts == Counter(done=len(ITEMS))
    assert work.most_at_once <= 3
    assert all(len(phases) == 1 for phases in work.phases_seen_while_running)


def test_chunks_hold_consecutive_items_of_one_phase():
    chunks: list[list[str]] = []

    run_ordered(ITEMS[30:50], lambda chunk: chunks.append(chunk) or Counter(), position=identity, phase=phase,
                chunk=4)

    assert chunks == [ITEMS[30:34], ITEMS[34:38], ITEMS[38:40], ITEMS[40:44], ITEMS[44:48], ITEMS[48:50]]


def test_ctrl_c_saves_the_place_and_the_same_run_continues_without_redoing_finished_items(tmp_path):
    path = tmp_path / "reprocess.json"
    first = Recorder(interrupt_after=25)

    with pytest.raises(Interrupted) as stopped:
        run_ordered(ITEMS, first, position=identity, phase=phase, workers=3,
                    checkpoint=Checkpoint.open(path, {"prefix": "data/"}))

    assert path.exists()
    assert 25 <= stopped.value.done == len(first.ran) < len(ITEMS)
    assert stopped.value.through is not None and stopped.value.through <= max(first.ran)
    resumed = Checkpoint.open(path, {"prefix": "data/"})
    assert resumed.resumed and all(resumed.finished(item) for item in first.ran)
    second = Recorder()
    counts = run_ordered(ITEMS, second, position=identity, phase=phase, workers=3, checkpoint=resumed)

    assert sorted(first.ran + second.ran) == ITEMS  # each item exactly once over the two runs
    assert counts == Counter(done=len(ITEMS))  # the counts carry over


def test_a_checkpoint_of_a_different_run_or_a_restart_starts_over(tmp_path):
    path = tmp_path / "reprocess.json"
    saved = Checkpoint(path, {"prefix": "data/"}, through="0/010", ahead={"0/012"}, counts=Counter(done=12))
    saved.save()

    assert Checkpoint.open(path, {"prefix": "data/"}).finished("0/012")
    assert not Checkpoint.open(path, {"prefix": "data/"}).finished("0/011")
    for fresh in (Checkpoint.open(path, {"prefix": "allsky/"}), Checkpoint.open(path, {"prefix": "data/"}, True)):
        assert not fresh.resumed and fresh.through is None and not fresh.counts


def test_an_error_in_the_work_stops_the_run_and_keeps_what_finished(tmp_path):
    path = tmp_path / "reprocess.json"

    def work(chunk: list[str]) -> Counter[str]:
        if chunk[0] == "0/005":
            raise ConnectionError("queue unreachable")
        return Counter(done=len(chunk))

    with pytest.raises(ConnectionError):
        run_ordered(ITEMS, work, position=identity, checkpoint=Checkpoint.open(path, {}))

    saved = Checkpoint.open(path, {})
    assert saved.finished("0/004") and not saved.finished("0/005")
