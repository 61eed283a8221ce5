"""Which AWS the client commands (simulate-site, reprocess, status) talk to, said out loud.

A running `serve` writes `.archive/local.env`; when AWS_ENDPOINT_URL is not already set, the client
commands load that file, so they reach the local stack without a `source` step and can never send a
simulated site's files to the real bucket by accident. Every command prints the target it uses.
"""

from __future__ import annotations

import argparse
import os
import socket
import urllib.parse
from pathlib import Path

from archive import aws
from archive.local.stack import parse_env_file
from archive.settings import get_settings

DEFAULT_ENV_FILE = Path(".archive") / "local.env"


def load_target(env_file: Path | None) -> str:
    """Apply the env file (its values win, it describes one coherent stack) and describe the target.

    `env_file` None means: the default file, when it exists and AWS_ENDPOINT_URL is unset.
    """

    source = ""
    if env_file is None and not os.environ.get("AWS_ENDPOINT_URL") and DEFAULT_ENV_FILE.exists():
        env_file = DEFAULT_ENV_FILE
    if env_file is not None:
        if not env_file.exists():
            raise SystemExit(f"{env_file} does not exist: start `python -m archive serve` first")
        env = parse_env_file(env_file.read_text())
        endpoint = env.get("AWS_ENDPOINT_URL", "")
        if endpoint and not answers(endpoint):
            # A stale file: `serve` was killed and could not remove it.
            raise SystemExit(
                f"the local stack is not running (start it with `python -m archive serve`): {env_file} "
                f"names {endpoint}, where nothing answers"
            )
        os.environ.update(env)
        source = f" (from {env_file})"
    get_settings.cache_clear()
    aws.clear_clients()
    settings = get_settings()
    where = settings.aws_endpoint_url or f"AWS {settings.region}"
    return f"target: {where}, bucket {settings.bucket}{source}"


def answers(endpoint_url: str, timeout: float = 2.0) -> bool:
    """Whether something accepts connections at the endpoint's host and port."""
    parts = urllib.parse.urlsplit(endpoint_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def add_env_file_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help=f"KEY=value file to load first (default: {DEFAULT_ENV_FILE} when it exists and AWS_ENDPOINT_URL is unset)",
    )
