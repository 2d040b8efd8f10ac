"""``ActionSink``: the event sink that fires ``[[actions]]``, off the analysis thread.

``publish`` (on the analysis worker) only matches and enqueues: each action has
its own bounded queue and daemon thread, and a full queue drops the event
(counted ``dropped``, logged) rather than wait. The thread sends one event at a
time; a failed attempt is retried up to ``retries`` times, waiting ``backoff_s``,
then twice that, and so on up to a minute (counted ``retried``); an event still not delivered
is counted ``failed`` and logged, and the next one is taken. Outcomes go to a
``count(action, outcome)`` callable (``Metrics.count_action`` in the daemon).

``close`` asks every thread to stop and waits at most ``close_timeout_s`` in
all: a thread stops after the attempt in hand (a ZMQ wait is cut short and a
running command killed at once, an HTTP request runs at most its ``timeout_s``); events still queued
are not sent (counted ``dropped``). A thread that outlives the wait is a daemon
thread, so it never holds the process up.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog

from livecell.actions._protocol import ActionFailed, Sender
from livecell.actions.command import CommandSender
from livecell.actions.http_post import HttpPostSender
from livecell.actions.matching import matches
from livecell.actions.zmq_req import ZmqReqSender
from livecell.config import ActionConfig

log = structlog.get_logger("livecell.actions")

SENT: Final = "sent"
FAILED: Final = "failed"
RETRIED: Final = "retried"
DROPPED: Final = "dropped"

MAX_BACKOFF_S: Final = 60.0  # the doubling waits between retries stop growing here

CountOutcome = Callable[[str, str], None]
"""``count(action_name, outcome)``, called from the publishing and the worker threads."""


def action_name(index: int, action: ActionConfig) -> str:
    """The ``action`` label of an entry: its position in the config and its target, ``0:http``."""
    return f"{index}:{action.target}"


def make_sender(action: ActionConfig, stop: threading.Event) -> Sender:
    """The sender for the action's one target; ``stop`` cuts a ZMQ reply wait short and
    kills a command still running."""
    if action.zmq is not None:
        return ZmqReqSender(action.zmq, action.timeout_s, stop=stop)
    if action.http is not None:
        return HttpPostSender(action.http, action.timeout_s)
    if action.command is not None:
        return CommandSender(action.command, action.timeout_s, stop=stop)
    raise ValueError("an action needs one of zmq, http, command")  # the config ensures it


@dataclass(frozen=True, slots=True)
class _Pending:
    event_id: str
    payload: bytes


class _Worker:
    """One action: its queue, its thread, its sender (used only on that thread)."""

    def __init__(self, name: str, action: ActionConfig, count: CountOutcome) -> None:
        self.name = name
        self.action = action
        self._count = count
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=action.queue_size)
        self.stop = threading.Event()
        self._sender = make_sender(action, self.stop)
        self.thread = threading.Thread(
            target=self._run, name=f"livecell-action-{name}", daemon=True
        )

    def offer(self, pending: _Pending) -> None:
        """Enqueue without blocking; a full queue drops the event."""
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            self._count(self.name, DROPPED)
            log.warning(
                "action queue full, event dropped",
                action=self.name,
                event_id=pending.event_id,
                queue_size=self.action.queue_size,
            )

    def request_stop(self) -> None:
        self.stop.set()
        with contextlib.suppress(queue.Full):  # wakes an idle thread; a busy one sees ``stop``
            self._queue.put_nowait(None)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                pending = self._queue.get()
                if pending is None or self.stop.is_set():
                    if pending is not None:
                        self._count(self.name, DROPPED)
                    break
                self._deliver(pending)
        except Exception:
            log.exception("action thread failed", action=self.name)
        finally:
            self._drop_leftovers()
            try:
                self._sender.close()
            except Exception:
                log.exception("action close failed", action=self.name)

    def _deliver(self, pending: _Pending) -> None:
        action = self.action
        reason = ""
        for attempt in range(action.retries + 1):
            if attempt:
                if self.stop.wait(min(action.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)):
                    self._count(self.name, DROPPED)
                    return
                self._count(self.name, RETRIED)
            try:
                self._sender.send(pending.payload)
            except ActionFailed as exc:
                reason = exc.reason
            except Exception as exc:  # a sender bug must not end the thread
                log.exception("action attempt raised", action=self.name)
                reason = repr(exc)
            else:
                self._count(self.name, SENT)
                log.info("action sent", action=self.name, event_id=pending.event_id)
                return
            log.warning(
                "action attempt failed",
                action=self.name,
                event_id=pending.event_id,
                attempt=attempt + 1,
                reason=reason,
            )
            if self.stop.is_set():
                self._count(self.name, DROPPED)
                return
        self._count(self.name, FAILED)
        log.error(
            "action failed",
            action=self.name,
            event_id=pending.event_id,
            attempts=action.retries + 1,
            reason=reason,
        )

    def _drop_leftovers(self) -> None:
        dropped = 0
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                break
            if pending is not None:
                dropped += 1
                self._count(self.name, DROPPED)
        if dropped:
            log.warning("action stopped with events unsent", action=self.name, dropped=dropped)


class ActionSink:
    """The ``[[actions]]`` of a config as one event sink (``livecell.sinks.EventSink``)."""

    name = "actions"

    def __init__(
        self,
        actions: Sequence[ActionConfig],
        count: CountOutcome,
        *,
        close_timeout_s: float = 2.0,
    ) -> None:
        self._close_timeout_s = close_timeout_s
        self._workers = [
            _Worker(action_name(i, action), action, count) for i, action in enumerate(actions)
        ]
        for worker in self._workers:
            worker.thread.start()

    def publish(self, records: Sequence[Mapping[str, Any]]) -> None:
        for record in records:
            payload: bytes | None = None
            for worker in self._workers:
                if matches(worker.action, record):
                    payload = payload or json.dumps(record, separators=(",", ":")).encode()
                    worker.offer(_Pending(str(record.get("event_id", "")), payload))

    def close(self) -> None:
        for worker in self._workers:
            worker.request_stop()
        deadline = time.monotonic() + self._close_timeout_s
        for worker in self._workers:
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        busy = [w.name for w in self._workers if w.thread.is_alive()]
        if busy:
            log.warning("actions still sending at close, left to end on their own", actions=busy)
