"""The ZeroMQ source: PULL (bind or connect) or SUB, two-part frame messages.

Back-pressure: the socket's receive high-water mark is small and the source
blocks on the pipeline's bounded queue, so a slow analysis stops reading,
the socket fills, and ZeroMQ pushes back on the sender (PUSH blocks; PUB, by
ZeroMQ's design, drops at its own high-water mark) instead of memory growing.
``MAXMSGSIZE`` bounds what one message part may allocate, at twice
``max_frame_mib``: a message over ``max_frame_mib`` but under that is received and
rejected by name (``shape_too_large``, ``buffer_size_mismatch``); one over it is refused
by ZeroMQ itself, which drops the sender's connection and what was in flight on it
(docs/ingest.md). The socket is bound (or connected) when the source is made, so an
address that cannot be used stops the start-up, not the running daemon.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
import zmq

from livecell.config import SourceConfig
from livecell.stream._protocol import Emit
from livecell.stream.messages import MAX_HEADER_BYTES, parse_message
from livecell.zmq_bind import bind_exclusively, connect

log = structlog.get_logger("livecell.stream.zmq")

_POLL_MS = 100


class ZmqSource:
    kind = "zmq"

    def __init__(self, config: SourceConfig, *, context: zmq.Context[Any] | None = None) -> None:
        self._config = config
        self._context = context or zmq.Context.instance()
        self.max_frame_bytes = int(config.max_frame_mib * 1024 * 1024)
        self._socket = self._open()

    def _open(self) -> zmq.Socket[Any]:
        config = self._config
        socket: zmq.Socket[Any] = self._context.socket(
            zmq.PULL if config.socket == "pull" else zmq.SUB
        )
        socket.setsockopt(zmq.RCVHWM, config.receive_hwm)
        socket.setsockopt(zmq.MAXMSGSIZE, 2 * self.max_frame_bytes + MAX_HEADER_BYTES)
        socket.setsockopt(zmq.LINGER, 0)
        if config.socket == "sub":
            socket.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            if config.bind:
                bind_exclusively(socket, config.endpoint)
            else:
                connect(socket, config.endpoint)
        except zmq.ZMQError:
            socket.close(linger=0)
            raise
        return socket

    def run(self, emit: Emit, stop: threading.Event) -> None:
        socket = self._socket
        log.info(
            "listening",
            endpoint=self._config.endpoint,
            socket=self._config.socket,
            bind=self._config.bind,
        )
        try:
            while not stop.is_set():
                try:  # busy: straight to the next message; idle: wait in poll
                    parts = socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    socket.poll(_POLL_MS, zmq.POLLIN)
                    continue
                received_at = time.time()
                item = parse_message(
                    [p.buffer for p in parts],
                    received_at=received_at,
                    max_frame_bytes=self.max_frame_bytes,
                )
                if not emit(item):
                    return
        finally:
            socket.close(linger=0)
