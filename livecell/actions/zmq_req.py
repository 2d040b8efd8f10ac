"""Send an event to a ZeroMQ REP peer and wait for its reply (the "lazy pirate" client).

A REQ socket whose reply never came is stuck (it may not send again), so after
a timeout the socket is closed with linger 0 and a fresh one is connected for
the next attempt. The reply's content is not interpreted: any reply is success.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq

from livecell.actions._protocol import ActionFailed
from livecell.zmq_bind import connect

_POLL_SLICE_MS = 50


class ZmqReqSender:
    def __init__(self, endpoint: str, timeout_s: float, *, stop: threading.Event) -> None:
        self._endpoint = endpoint
        self._timeout_ms = max(1, round(timeout_s * 1000))
        self._stop = stop
        self._context: zmq.Context[Any] = zmq.Context()
        self._socket: zmq.Socket[Any] | None = None
        self.last_reply = b""

    def send(self, payload: bytes) -> None:
        socket = self._socket or self._connect()
        try:
            socket.send(payload, flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self._reset()
            raise ActionFailed(f"cannot send to {self._endpoint}: {exc}") from None
        waited_ms = 0
        while waited_ms < self._timeout_ms and not self._stop.is_set():
            slice_ms = min(_POLL_SLICE_MS, self._timeout_ms - waited_ms)
            if socket.poll(slice_ms, zmq.POLLIN):
                self.last_reply = socket.recv()
                return
            waited_ms += slice_ms
        self._reset()
        raise ActionFailed(f"no reply from {self._endpoint} within {self._timeout_ms} ms")

    def close(self) -> None:
        self._reset()
        self._context.term()

    def _connect(self) -> zmq.Socket[Any]:
        socket: zmq.Socket[Any] = self._context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            connect(socket, self._endpoint)
        except zmq.ZMQError as exc:
            socket.close(linger=0)
            raise ActionFailed(f"cannot connect to {self._endpoint}: {exc}") from None
        self._socket = socket
        return socket

    def _reset(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
