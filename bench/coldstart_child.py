"""One fresh interpreter's cold start, for bench/bench_coldstart.py (run as a script: nothing but the
standard library is imported before the clock starts).

Usage: coldstart_child.py MODE FUNCTION [WIDTH]
- init: import the handler (as shipped: deferred imports deferred), then the deferred imports
  (`archive.lazy.warm_up`), then the before-snapshot hooks (the rehearsal), then the after-restore hooks;
- cold: import the render handler and answer a render request, then a second one (warm);
- restored: import the render handler, run the before-snapshot hooks (the snapshot), then the after-restore
  hooks and the first render request, timed together as the restored environment's first answer.
Prints one JSON line of milliseconds.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def render_event(base: str, width: int) -> dict:
    return {"routeKey": "GET /thumbnails/{base_filename}", "rawPath": f"/thumbnails/{base}",
            "pathParameters": {"base_filename": base},
            "queryStringParameters": {"source": "small", "width": str(width), "height": str(width)}}


def run_hooks(which: str) -> None:
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    for func, args, kwargs in (get_before_snapshot() if which == "before" else get_after_restore()):
        func(*args, **kwargs)


def main(mode: str, function: str, width: int, base: str) -> dict[str, float]:
    started = time.perf_counter()
    handler = importlib.import_module(f"handlers.{function}")
    out = {"import": ms(started)}
    if mode == "init":
        from archive import lazy

        started = time.perf_counter()
        lazy.warm_up()
        out["deferred"] = ms(started)
        started = time.perf_counter()
        run_hooks("before")
        out["rehearsal"] = ms(started)
        started = time.perf_counter()
        run_hooks("after")
        out["restore"] = ms(started)
        return out
    if mode == "restored":
        run_hooks("before")
        started = time.perf_counter()
        run_hooks("after")
        out["restore"] = ms(started)
        answer = handler.handler(render_event(base, width), None)
        out["first"] = ms(started)
    else:
        started = time.perf_counter()
        answer = handler.handler(render_event(base, width), None)
        out["first"] = ms(started)
    assert answer["statusCode"] == 200, answer
    started = time.perf_counter()
    answer = handler.handler(render_event(base, width + 1), None)
    out["warm"] = ms(started)
    assert answer["statusCode"] == 200, answer
    return out


if __name__ == "__main__":
    mode, function = sys.argv[1], sys.argv[2]
    width = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    base = sys.argv[4] if len(sys.argv) > 4 else ""
    print(json.dumps(main(mode, function, width, base)))
