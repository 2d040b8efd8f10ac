"""Publish committed events on a ZeroMQ PUB socket as ``[kind, json]`` messages.

PUB never blocks: a subscriber that cannot keep up loses messages at the
socket's high-water mark, silently (ZeroMQ's own rule: a PUB socket neither
blocks nor reports the drop); the events file remains the complete record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import zmq

from livecell.zmq_bind import bind_exclusively


class ZmqPublisher:
    name = "zmq_pub"

    def __init__(self, endpoint: str, *, context: zmq.Context[Any] | None = None) -> None:
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.setsockopt(zmq.SNDHWM, 10_000)
        try:
            bind_exclusively(self._socket, endpoint)
        except zmq.ZMQError:
            self._socket.close(linger=0)
            raise

    def publish(self, records: Sequence[Mapping[str, Any]]) -> None:
        for record in records:
            message = [str(record["kind"]).encode(), json.dumps(record).encode()]
            self._socket.send_multipart(message, flags=zmq.NOBLOCK)

    def close(self) -> None:
        self._socket.close()
