"""Binding a ZeroMQ socket only where no other process listens (and IPv6 where asked).

A ``tcp://`` port in use fails to bind (``EADDRINUSE``), but libzmq binds an
``ipc://`` path by removing whatever socket file is there: a second daemon with the
same endpoint silently takes the first one's subscribers or senders. So before an
``ipc://`` bind, the path is tried as a client: if something answers, the address is
in use, and the bind fails the way a taken port does.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import zmq

__all__ = ["bind_exclusively", "connect"]


def bind_exclusively(sock: zmq.Socket[Any], endpoint: str) -> None:
    """``sock.bind(endpoint)``, raising ``zmq.ZMQError(EADDRINUSE)`` for an ``ipc://``
    path another process listens on."""
    if endpoint.startswith("ipc://") and _listened_on(endpoint.removeprefix("ipc://")):
        raise zmq.ZMQError(errno.EADDRINUSE, f"{endpoint} is in use by another process")
    _ipv6_if_asked(sock, endpoint)
    sock.bind(endpoint)


def connect(sock: zmq.Socket[Any], endpoint: str) -> None:
    """``sock.connect(endpoint)``, an IPv6 ``tcp://[addr]:port`` included."""
    _ipv6_if_asked(sock, endpoint)
    sock.connect(endpoint)


def _ipv6_if_asked(sock: zmq.Socket[Any], endpoint: str) -> None:
    if endpoint.startswith("tcp://["):  # an IPv6 address: libzmq takes it only when told
        sock.setsockopt(zmq.IPV6, 1)


def _listened_on(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        return False  # no file, or a stale one nobody listens on: the bind may take it
    finally:
        probe.close()
    return True
