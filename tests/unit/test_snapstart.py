"""SnapStart's hooks (archive/snapstart.py): registered by the handlers, eager before the snapshot and
lazy otherwise, and after a restore nothing that belongs to one environment is left over."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

from snapshot_restore_py import get_after_restore, get_before_snapshot

import db
from archive import aws, snapstart
from archive.ingest import thumbnails
from archive.render import api as render_api
from handlers import ingest, render  # noqa: F401 - importing them registers their hooks

ROOT = Path(__file__).resolve().parents[2]


def test_the_ingest_and_render_handlers_register_their_warm_up_and_the_restore_hook():
    before = [(func, args) for func, args, _ in get_before_snapshot()]
    assert (snapstart._log_before_snapshot, (thumbnails.rehearse,)) in before
    assert (snapstart._log_before_snapshot, (render_api.rehearse,)) in before
    assert snapstart._log_after_restore in [func for func, _, _ in get_after_restore()]


def test_a_restore_renews_the_credentials_engines_and_random_seeds(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "before-the-snapshot")
    aws.clear_clients()
    client = aws.client("s3")
    engine = db.engine_for("sqlite://")
    random.seed(7)
    drawn = random.random()
    random.seed(7)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "the-restored-environment-s")
    snapstart.after_restore()
    assert aws.client("s3") is not client
    assert aws.client("s3")._request_signer._credentials.access_key == "the-restored-environment-s"
    assert db.engine_for("sqlite://") is not engine
    assert random.random() != drawn  # a snapshot's copies must not all draw the same numbers
    db.dispose_engines()
    aws.clear_clients()


def test_the_warm_ups_touch_no_aws():
    calls: list[str] = []
    undo = aws.on_client_event("before-parameter-build", lambda model, **_: calls.append(model.name))
    try:
        thumbnails.rehearse()
        render_api.rehearse()
    finally:
        undo()
    assert calls == []


def test_deferred_imports_wait_for_the_snapshot_and_are_all_done_before_it():
    """In a fresh interpreter: importing the render handler (an ordinary cold start) loads neither numpy
    nor astropy nor Pillow; the before-snapshot hook loads all three."""
    code = (
        "import json, sys\n"
        "import handlers.render\n"
        "heavy = ('numpy', 'astropy.io.fits', 'PIL.Image')\n"
        "at_init = [m for m in heavy if m in sys.modules]\n"
        "from snapshot_restore_py import get_before_snapshot\n"
        "for func, args, kwargs in get_before_snapshot():\n"
        "    func(*args, **kwargs)\n"
        "print(json.dumps([at_init, [m for m in heavy if m in sys.modules]]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=True)
    at_init, after_hook = json.loads(done.stdout.strip().splitlines()[-1])
    assert at_init == []
    assert after_hook == ["numpy", "astropy.io.fits", "PIL.Image"]
