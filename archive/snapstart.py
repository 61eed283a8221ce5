"""SnapStart: what a function does before Lambda snapshots its initialised environment, and after each
restore from that snapshot.

With SnapStart (serverless.yml `snapStart`, docs/operations.md "SnapStart"), Lambda runs a version's init
once, snapshots its memory, and starts later environments by restoring the snapshot instead of running
init again. So:
- before the snapshot, everything that can be done is done: the imports `archive.lazy` defers (Pillow,
  numpy, astropy, where the zip ships them), the handler's own warm-up (a tiny picture through the real
  code, so first-use work inside those libraries is in the snapshot too), and the AWS clients (botocore's
  service models and endpoint rules: measured at 1.6 s of a restored render's first request when they
  were rebuilt after the restore, bench/bench_coldstart.py). On an ordinary cold start none of it runs:
  there the lazy imports keep init short.
- after each restore, what must not be shared by the environments restored from one snapshot is made
  again: the credentials the clients sign with (resolved afresh; the loaded models are kept), the
  database engines (a pooled connection would be one socket in every copy; dropped, not closed) and
  the random generators (every copy would draw the same numbers).

The hooks go through `snapshot_restore_py`, which the Lambda Python runtime provides (the PyPI package
of that name is the same module, for tests and benchmarks). Without it nothing is registered.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable

import db
from archive import aws, lazy

try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # not in Lambda's runtime, and not installed: no SnapStart here
    register_after_restore = register_before_snapshot = None

logger = logging.getLogger(__name__)


def before_snapshot(warm_up: Callable[[], object] | None = None) -> dict[str, float | list[str]]:
    """Import what `archive.lazy` defers, run the handler's warm-up, build the AWS clients; what it took
    and imported. No AWS call is made: nothing is connected when the snapshot is taken."""
    started = time.perf_counter()
    imported = lazy.warm_up()
    if warm_up is not None:
        warm_up()
    aws.warm_clients()
    return {"imported": imported, "ms": round((time.perf_counter() - started) * 1000, 1)}


def after_restore() -> float:
    """Forget the per-environment state the snapshot holds; milliseconds it took."""
    started = time.perf_counter()
    aws.forget_credentials()
    db.dispose_engines(close=False)
    random.seed()
    numpy_random = sys.modules.get("numpy.random")  # only if something drew from it: importing costs ~50 ms
    if numpy_random is not None:
        numpy_random.seed()
    return round((time.perf_counter() - started) * 1000, 3)


def install(warm_up: Callable[[], object] | None = None) -> bool:
    """Register both hooks (a handler module calls this at import). True when the runtime has them."""
    if register_before_snapshot is None or register_after_restore is None:
        return False
    register_before_snapshot(_log_before_snapshot, warm_up)
    register_after_restore(_log_after_restore)
    return True


def _log_before_snapshot(warm_up: Callable[[], object] | None) -> None:
    logger.info("before snapshot", extra=before_snapshot(warm_up))


def _log_after_restore() -> None:
    logger.info("restored from snapshot", extra={"ms": after_restore()})
