"""A PostgreSQL cluster of our own, started from the installed binaries.

Used by the tests (a throwaway cluster when DATABASE_URL is unset) and by the local stack (an
embedded default under `.archive/`). As root, the cluster runs as the `postgres` user, since
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from archive.local.ports import free_port, port_is_free


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or the cluster would not start)."""


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL bin directory holding initdb and pg_ctl, if any."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        try:
            major = int(bin_dir.parent.name)
        except ValueError:
            continue
        candidates.append((major, bin_dir))
    if candidates:
        return max(candidates)[1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int = 0
    durable: bool = True  # throwaway test clusters turn fsync off

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable("no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin)")
        self.bin_dir: Path = bin_dir
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd="/")

    def _chown(self, path: Path) -> None:
        if self._as_root:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def _owner_file(self) -> Path:
        return self.data_dir / "archive.owner"

    def claim(self) -> None:
        """Record this process as the one that stops the cluster (`owner_alive` asks about it)."""
        self._owner_file.write_text(str(os.getpid()))

    def owner_alive(self) -> bool:
        """Whether the process that claimed the cluster still runs. False for a cluster orphaned by a
        killed `serve`, so the next stack adopts it and stops it when it stops."""
        try:
            pid = int(self._owner_file.read_text())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, another user's
            return True
        return True

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data_dir), "status", check=False).returncode == 0

    def start(self) -> str:
        """Initialise (first time) and start the cluster; returns its SQLAlchemy URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        if self._as_root:
            # postgres must be able to reach the directory through its parents.
            for parent in self.data_dir.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        if not self.initialized():
            result = self._run(
                "initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                check=False,
            )
            if result.returncode != 0:
                raise PostgresUnavailable(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        port_file = self.data_dir / "archive.port"
        recorded = int(port_file.read_text()) if port_file.exists() else 0
        if self.running() and recorded:
            self.port = recorded
            return self.url
        if not self.port:
            # The port it had before, when free: a restarted cluster keeps its URL.
            self.port = recorded if recorded and port_is_free("127.0.0.1", recorded) else free_port()
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "-o", options, "-w",
            "-t", "60", "start", check=False,
        )
        if result.returncode != 0:
            log = (self.data_dir / "server.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed: {result.stderr.strip()}\n{tail}")
        port_file.write_text(str(self.port))
        return self.url

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (`mode` as pg_ctl's: fast, or immediate for a crash-like stop)."""
        if self.initialized():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)
            self._owner_file.unlink(missing_ok=True)
