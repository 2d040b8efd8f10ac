"""The sender protocol: how an action delivers one event to its peer.

Lifecycle: constructed (nothing connected yet) -> ``send`` called from the
action's own worker thread, one event at a time -> ``close`` once, from that
same thread. ``send`` returns once the peer has taken the event (a ZMQ reply, a
2xx response, exit status 0) and raises ``ActionFailed`` otherwise, never
waiting longer than the action's ``timeout_s``.
"""

from __future__ import annotations

from typing import Protocol


class ActionFailed(Exception):
    """One attempt to deliver an event did not succeed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Sender(Protocol):
    def send(self, payload: bytes) -> None: ...

    def close(self) -> None: ...
