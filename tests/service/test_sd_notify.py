"""The sd_notify client against a real AF_UNIX datagram socket."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from notify_listener import NotifyListener

from livecell.pipeline import PipelineProgress
from livecell.service import NotifySettings, SdNotifier, ServiceHeartbeat, status_text


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path)
    yield listener
    listener.close()


class FakeClock:
    """Time as the test sets it: the rate limits are about time, not about sockets."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_settings_from_environ() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000"}
    settings = NotifySettings.from_environ(env, pid=42)
    assert settings.socket_path == "/run/systemd/notify"
    assert settings.watchdog_interval_s == 15.0
    own = NotifySettings.from_environ({**env, "WATCHDOG_PID": "42"}, 42)
    assert own.watchdog_usec == 30_000_000
    # the watchdog belongs to another process, or the value is nonsense: no pings
    assert NotifySettings.from_environ({**env, "WATCHDOG_PID": "7"}, 42).watchdog_usec is None
    assert NotifySettings.from_environ({**env, "WATCHDOG_USEC": "x"}, 42).watchdog_usec is None
    assert NotifySettings.from_environ({**env, "WATCHDOG_USEC": "0"}, 42).watchdog_usec is None
    assert NotifySettings.from_environ({}, 42) == NotifySettings(None, None)


def test_no_socket_is_a_no_op() -> None:
    notifier = SdNotifier(NotifySettings.from_environ({"WATCHDOG_USEC": "1000"}, os.getpid()))
    assert not notifier.enabled
    assert not notifier.watchdog_enabled
    notifier.ready()
    notifier.status("x")
    notifier.stopping()
    assert notifier.watchdog() is False
    assert notifier.notify("READY=1") is False
    notifier.close()


def test_messages_arrive(listener: NotifyListener) -> None:
    notifier = SdNotifier(NotifySettings(str(listener.path)))
    notifier.ready()
    notifier.status("frames 3,\nqueue 0")  # a newline would end the STATUS field
    notifier.stopping()
    notifier.stopping()  # once only
    assert not notifier.watchdog()  # no WATCHDOG_USEC: no pings
    assert listener.wait(lambda lines: "STOPPING=1" in lines, timeout_s=5)
    notifier.close()
    assert listener.lines() == ["READY=1", "STATUS=frames 3, queue 0", "STOPPING=1"]


def test_abstract_namespace_address() -> None:
    name = f"livecell-test-{os.getpid()}-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(5)
        notifier = SdNotifier(NotifySettings("@" + name))
        notifier.ready()
        assert server.recv(100) == b"READY=1"
        notifier.close()


def test_watchdog_rate_limited_to_half_the_timeout(listener: NotifyListener) -> None:
    clock = FakeClock()
    notifier = SdNotifier(NotifySettings(str(listener.path), watchdog_usec=2_000_000), clock=clock)
    sent = []
    for _ in range(32):  # 4 s in 1/8 s steps: a ping at 0, 1, 2 and 3 s
        sent.append(notifier.watchdog())
        clock.now += 0.125
    assert [i for i, s in enumerate(sent) if s] == [0, 8, 16, 24]
    assert listener.wait(lambda lines: lines.count("WATCHDOG=1") == 4, timeout_s=5)
    notifier.close()


def test_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path)
    path = listener.path
    listener.close()
    path.unlink()
    notifier = SdNotifier(NotifySettings(str(path), watchdog_usec=1000))
    assert notifier.notify("READY=1") is False
    assert notifier.watchdog() is False
    notifier.close()


def test_heartbeat_pings_and_sends_changed_status(listener: NotifyListener) -> None:
    clock = FakeClock()
    notifier = SdNotifier(NotifySettings(str(listener.path), watchdog_usec=200_000), clock=clock)
    beat = ServiceHeartbeat(notifier, status_interval_s=1.0, clock=clock)
    beat(PipelineProgress(frames_done=0, queue_depth=0, lag_s=0.0))
    clock.now += 0.2
    beat(PipelineProgress(frames_done=0, queue_depth=0, lag_s=0.0))  # same text: ping only
    clock.now += 0.2
    beat(PipelineProgress(frames_done=5, queue_depth=1, lag_s=0.42))  # too soon for STATUS
    clock.now += 1.0
    beat(PipelineProgress(frames_done=7, queue_depth=0, lag_s=0.44))
    assert listener.wait(lambda lines: len(lines) == 6, timeout_s=5)
    notifier.close()
    assert listener.lines() == [
        "WATCHDOG=1",
        "STATUS=frames 0, queue 0, lag 0.0 s",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "STATUS=frames 7, queue 0, lag 0.4 s",
    ]
    assert status_text(PipelineProgress(120, 0, 0.4)) == "frames 120, queue 0, lag 0.4 s"
