"""Loopback ports for the local stack's servers (moto, the embedded PostgreSQL)."""

from __future__ import annotations

import random
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


def steady_port(count: int = 1, low: int = 20_000, high: int = 32_000) -> int:
    """A free port, with the `count - 1` after it free too, below the kernel's ephemeral range (32768 on).

    A port from `free_port` is an ephemeral one: until a server listens on it, any outgoing connection
    of this machine may be given it (or the one after it, for a second server). Below the range only
    servers bind, as `serve`'s default 4566 does.
    """
    for port in random.sample(range(low, high - count), 500):
        if all(port_is_free("127.0.0.1", port + i) for i in range(count)):
            return port
    raise RuntimeError(f"no {count} free neighbouring ports between {low} and {high}")
