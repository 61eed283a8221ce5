"""Loopback ports for the local stack's servers (moto, the embedded PostgreSQL)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now.

    With SO_REUSEADDR, as the servers themselves bind: a port whose last connections are in TIME_WAIT
    (left by any stop of a server that had clients, for a minute) is free to listen on again.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
