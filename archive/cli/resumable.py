"""Working through a long ordered list with a few threads, and carrying on after Ctrl-C.

A backfill of 100,000 objects takes long enough to be interrupted. `run_ordered` hands the items, in
their order, to `work` in at most `workers` threads at once, with only a small window of them queued,
and keeps its place in a `Checkpoint` file: every item up to `through` (a position in that order) is
done, plus the few finished ahead of it by a faster thread. Ctrl-C lets the items in hand finish,
saves the checkpoint and raises `Interrupted`, which says where it stopped; a run with the same
checkpoint skips what is done and carries on. Positions are strings that sort in processing order, so
a fresh listing of the same items resumes correctly even if new items appeared meanwhile (those sorting
before the mark are left to whatever ingests new uploads).

Items of different `phase`s never overlap: the next phase starts when the previous one has finished
(reprocess replays every header before the files that need it).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

SAVE_EVERY_SECONDS = 1.0


@dataclass
class Checkpoint:
    """How far one run (identified by `run`, what was asked) got; kept in a JSON file."""

    path: Path
    run: dict[str, Any]
    through: str | None = None  # every item at or before this position is done
    ahead: set[str] = field(default_factory=set)  # positions after `through` that are done too
    counts: Counter[str] = field(default_factory=Counter)  # outcomes so far, across resumed runs
    resumed: bool = False

    @classmethod
    def open(cls, path: Path, run: dict[str, Any], restart: bool = False) -> Checkpoint:
        """The saved checkpoint of this same run, or a fresh one (a different run starts over)."""
        if not restart and path.exists():
            saved = json.loads(path.read_text())
            if saved.get("run") == run:
                return cls(path, run, saved.get("through"), set(saved.get("ahead", ())),
                           Counter(saved.get("counts", {})), resumed=True)
        return cls(path, run)

    def finished(self, position: str) -> bool:
        return (self.through is not None and position <= self.through) or position in self.ahead

    def save(self) -> None:
        """Write atomically: an interruption while saving leaves the previous checkpoint intact."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"run": self.run, "through": self.through, "ahead": sorted(self.ahead), "counts": dict(self.counts)}
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(body, indent=1))
        os.replace(partial, self.path)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during `run_ordered`: the work in hand finished, and the checkpoint says where it stopped."""

    def __init__(self, done: int, total: int, through: str | None, checkpoint: Checkpoint | None) -> None:
        super().__init__(f"stopped after {done} of {total}")
        self.done, self.total, self.through, self.checkpoint = done, total, through, checkpoint


@dataclass
class _Progress(Generic[T]):
    """Which items are done, and the low-water mark below which all are."""

    items: Sequence[T]
    position: Callable[[T], str]
    checkpoint: Checkpoint
    done: list[bool] = field(init=False)
    mark: int = 0  # items[:mark] are all done

    def __post_init__(self) -> None:
        self.done = [self.checkpoint.finished(self.position(item)) for item in self.items]
        self._advance()

    def finish(self, indices: Sequence[int]) -> None:
        for i in indices:
            self.done[i] = True
            self.checkpoint.ahead.add(self.position(self.items[i]))
        self._advance()

    def _advance(self) -> None:
        while self.mark < len(self.items) and self.done[self.mark]:
            self.checkpoint.ahead.discard(self.position(self.items[self.mark]))
            self.mark += 1
        if self.mark:
            through = self.position(self.items[self.mark - 1])
            if self.checkpoint.through is None or through > self.checkpoint.through:
                self.checkpoint.through = through
                self.checkpoint.ahead = {p for p in self.checkpoint.ahead if p > through}

    @property
    def count(self) -> int:
        return sum(self.done)


def _chunks(indices: list[int], phase_of: Callable[[int], Hashable], size: int) -> list[list[int]]:
    """Consecutive runs of at most `size` indices, never spanning two phases."""
    out: list[list[int]] = []
    for i in indices:
        if out and len(out[-1]) < size and phase_of(out[-1][-1]) == phase_of(i):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def run_ordered(
    items: Sequence[T],
    work: Callable[[list[T]], Counter[str]],
    *,
    position: Callable[[T], str],
    workers: int = 1,
    chunk: int = 1,
    phase: Callable[[T], Hashable] = lambda item: 0,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
) -> Counter[str]:
    """Run `work` over `items` (sorted by `position`) in chunks, `workers` at a time; returns the counts.

    `work` returns a Counter of outcomes for its chunk; an exception from it stops the run (the
    checkpoint keeps everything finished before) and propagates. `progress(n)` is called in this
    thread with the number of items each finished chunk held.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    state = _Progress(items, position, checkpoint or Checkpoint(Path(os.devnull), {}))
    ckpt = state.checkpoint
    pending = [i for i, done in enumerate(state.done) if not done]
    chunks = _chunks(pending, lambda i: phase(items[i]), chunk)
    window = 2 * workers
    in_flight: dict[cf.Future[Counter[str]], list[int]] = {}
    last_save = time.monotonic()

    def save(force: bool = False) -> None:
        nonlocal last_save
        if checkpoint is not None and (force or time.monotonic() - last_save >= SAVE_EVERY_SECONDS):
            ckpt.save()
            last_save = time.monotonic()

    def collect(futures: set[cf.Future[Counter[str]]]) -> None:
        for future in futures:
            indices = in_flight.pop(future)
            counts = future.result()  # an exception stops the run; `finally` saves what is done
            ckpt.counts.update(counts)
            state.finish(indices)
            if progress:
                progress(len(indices))
        save()

    executor = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replay")
    try:
        next_chunk = 0
        while next_chunk < len(chunks) or in_flight:
            while next_chunk < len(chunks) and len(in_flight) < window:
                indices = chunks[next_chunk]
                starts_phase = next_chunk and phase(items[chunks[next_chunk - 1][0]]) != phase(items[indices[0]])
                if starts_phase and in_flight:
                    break  # let the previous phase finish first
                in_flight[executor.submit(work, [items[i] for i in indices])] = indices
                next_chunk += 1
            finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            collect(finished)
    except KeyboardInterrupt:
        # Finish what the threads hold (quick), drop what has not started, record it all.
        executor.shutdown(wait=True, cancel_futures=True)
        collect({f for f in in_flight if f.done() and not f.cancelled() and f.exception() is None})
        save(force=True)
        through = items[state.mark - 1] if state.mark else None
        raise Interrupted(state.count, len(items), position(through) if through is not None else None,
                          checkpoint) from None
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        save(force=True)
    return ckpt.counts
