"""`make demo KEEP=1`: the demo's checks, then the stack and its viewer stay up until Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from archive.local.stack import _ensure_postgres_database, _named_postgres_url, parse_env_file

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_demo_keep_prints_the_viewer_url_serves_it_until_ctrl_c_then_stops_cleanly(tmp_path, database_url):
    state = tmp_path / "state"
    _ensure_postgres_database(database_url, "demo_keep", fresh=True)  # its own, empty: the demo counts rows
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=_named_postgres_url(database_url, "demo_keep"))
    process = subprocess.Popen(
        [sys.executable, "-m", "archive", "demo", "--keep", "--exposures", "2", "--no-progress",
         "--state-dir", str(state)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.time() + 180
        while not output or "Ctrl-C stops everything" not in output[-1]:
            assert process.poll() is None or not lines.empty(), "".join(output)
            assert time.time() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                continue
        text = "".join(output)
        assert "all checks passed" in text
        [url] = {line.split("open ", 1)[1].strip() for line in output if "The stack stays up: open " in line}
        assert url.startswith("http://127.0.0.1:") and url.endswith("/viewer/") and f"viewer on {url}" in text

        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and "<title>Photon Ranch archive</title>" in page.read().decode()
        with urllib.request.urlopen(url + "api/sites", timeout=10) as answer:
            sites = {s["site"]: s["exposures"] for s in json.loads(answer.read())["sites"]}
        # the expiring EP exposure at tst is gone by then; mrc also took the colour set (three frames)
        assert sites == {"mrc": 2 + 3, "tst": 2}
        assert parse_env_file((state / "local.env").read_text())["ARCHIVE_API_URL"] == url.removesuffix("/viewer/")

        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert not (state / "local.env").exists()
