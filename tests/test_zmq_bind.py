"""``bind_exclusively``: an ``ipc://`` path another process listens on is in use, as a
taken ``tcp://`` port is; a stale socket file is not."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq
from daemons import ipv6_loopback

from livecell.zmq_bind import bind_exclusively, connect

LISTENER = """
import sys, time, zmq
s = zmq.Context.instance().socket(zmq.PUB)
s.bind(sys.argv[1])
print("bound", flush=True)
time.sleep(30)
"""


def test_an_ipc_path_another_process_listens_on_is_in_use(tmp_path: Path) -> None:
    """libzmq would remove the other daemon's socket file and take its subscribers."""
    endpoint = f"ipc://{tmp_path / 'events.ipc'}"
    other = subprocess.Popen(
        [sys.executable, "-c", LISTENER, endpoint], stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "bound"
        sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUB)
        try:
            with pytest.raises(zmq.ZMQError) as caught:
                bind_exclusively(sock, endpoint)
            assert caught.value.errno == errno.EADDRINUSE
        finally:
            sock.close(linger=0)
    finally:
        other.kill()
        other.wait()
        if other.stdout is not None:
            other.stdout.close()


def bind_a_publisher(endpoint: str) -> None:
    """Bind a PUB socket to ``endpoint`` with ``bind_exclusively`` (raising as it does),
    then close it."""
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.PUB)
    try:
        bind_exclusively(sock, endpoint)
    finally:
        sock.close(linger=0)


def test_a_stale_socket_file_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "events.ipc"
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))  # a crashed process leaves the file, listened on by nobody
    left.close()
    bind_a_publisher(f"ipc://{path}")


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_an_ipv6_endpoint_binds(tmp_path: Path) -> None:
    """``tcp://[::1]:PORT`` passes the config's check; libzmq refused it ("No such
    device") unless the socket is told IPv6."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as free:
        free.bind(("::1", 0))
        port = free.getsockname()[1]
    bind_a_publisher(f"tcp://[::1]:{port}")


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_an_ipv6_endpoint_is_reached_by_a_connect() -> None:
    """A ``tcp://[::1]:PORT`` action target or source endpoint to connect to never got
    a reply unless the socket is told IPv6."""
    context = zmq.Context.instance()
    server: zmq.Socket[Any] = context.socket(zmq.REP)
    client: zmq.Socket[Any] = context.socket(zmq.REQ)
    try:
        server.setsockopt(zmq.IPV6, 1)
        port = server.bind_to_random_port("tcp://[::1]")
        connect(client, f"tcp://[::1]:{port}")
        client.send(b"ping")
        assert server.poll(5000)
        assert server.recv() == b"ping"
    finally:
        client.close(linger=0)
        server.close(linger=0)
