"""Cold starts of the three functions, and what SnapStart leaves after a restore (issue 21).

Each figure is the median of ROUNDS fresh interpreters (bench/coldstart_child.py), with the deployed
environment (serverless.yml's, stage dev) and AWS answered by moto's server on loopback:

- import + init as shipped: the handler module imported, the deferred imports (numpy, astropy, Pillow:
  archive/lazy.py) still deferred; this is an ordinary cold start's init;
- the same with the deferred imports done eagerly (what an init that did not defer them would pay, and
  what a SnapStart snapshot holds without charging it to anyone's request);
- the rehearsal (the before-snapshot hook's tiny render or thumbnail): paid once per published version;
- the after-restore hooks (archive/snapstart.py): the work a restored environment still does at init;
- the image API's first request (a 2048×2048 FITS rendered to 200×200) in a cold process, in a restored
  one (after-restore hooks + the request), and warm (the next request in the same process).

Lambda itself (the runtime's bootstrap, downloading the zip, restoring the snapshot's memory) is not
measured here; this machine is x86_64 and shared, Lambda's are arm64 at 1-2 GB. Ratios are within one
run. Verdicts are printed, never raised.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "coldstart_child.py"
ROUNDS = int(os.environ.get("BENCH_COLDSTART_ROUNDS", "5"))
FUNCTIONS = ("ingest", "expire", "render")
BASE = "sro-kb001ms-20260101-00000042"


def child_env(endpoint: str) -> dict[str, str]:
    from archive.local import template  # noqa: PLC0415 - the parent only; children time their imports

    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "DATABASE_URL"))}
    env.update(template.load("dev").environment())
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "PYTHONPATH": str(ROOT),
                "LOG_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def run_child(env: dict[str, str], *args: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, str(CHILD), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"coldstart child {args} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(s[key] for s in samples), 1) for key in samples[0]}


def upload_source(endpoint: str) -> None:
    import boto3  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from astropy.io import fits  # noqa: PLC0415

    frame = np.random.default_rng(3).normal(1000, 30, (2048, 2048)).astype(np.float32)
    buf = io.BytesIO()
    fits.PrimaryHDU(frame).writeto(buf)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket="photonranch-001")
    s3.put_object(Bucket="photonranch-001", Key=f"data/{BASE}-EX10.fits", Body=buf.getvalue())


def main() -> None:
    from moto.server import ThreadedMotoServer  # noqa: PLC0415

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        upload_source(endpoint)
        env = child_env(endpoint)
        init = {f: medians([run_child(env, "init", f) for _ in range(ROUNDS)]) for f in FUNCTIONS}
        # Each request a new width: a new picture, never one another process left in the cache.
        cold = medians([run_child(env, "cold", "render", str(200 + 2 * i), BASE) for i in range(ROUNDS)])
        restored = medians([run_child(env, "restored", "render", str(400 + 2 * i), BASE) for i in range(ROUNDS)])
    finally:
        server.stop()
    report(init, cold, restored)


def report(init: dict[str, dict[str, float]], cold: dict[str, float], restored: dict[str, float]) -> None:
    from archive.local import template  # noqa: PLC0415

    functions = template.load("dev").functions
    print(f"median of {ROUNDS} fresh interpreters each (ms); rehearsal and after-restore only where "
          "serverless.yml turns SnapStart on")
    print(f"{'function':<8} {'init (lazy)':>12} {'init (eager)':>13} {'eager/lazy':>11} {'rehearsal':>10} "
          f"{'after restore':>14}")
    for function, m in init.items():
        eager = m["import"] + m["deferred"]
        snap = (f"{m['rehearsal']:>10.0f} {m['restore']:>14.2f}" if functions[function].get("snapStart")
                else f"{'-':>10} {'-':>14}")
        print(f"{function:<8} {m['import']:>12.0f} {eager:>13.0f} {eager / m['import']:>10.2f}x {snap}")
    print("\nimage API, GET /thumbnails/{base}?source=small (2048x2048 FITS to 200x200), moto on loopback")
    cold_total = cold["import"] + cold["first"]
    restored_total = restored["first"]  # after-restore hooks + the request
    print(f"  cold start:  init {cold['import']:.0f} + first request {cold['first']:.0f} = {cold_total:.0f}")
    print(f"  SnapStart:   after-restore hooks {restored['restore']:.1f} + first request "
          f"{restored['first'] - restored['restore']:.0f} = {restored_total:.0f}")
    print(f"  warm:        {cold['warm']:.0f} (next request, same process)")
    print(f"  restored first answer / cold first answer: {restored_total / cold_total:.2f}x; "
          f"restored first / warm: {restored_total / cold['warm']:.2f}x")


if __name__ == "__main__":
    main()
