"""The three senders against real peers: what arrives, and how each kind of failure reads."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from action_peers import (
    HttpPeer,
    ZmqPeer,
    dead_port,
    death_event,
    recorded,
    recording_script,
    script_command,
)

from livecell.actions import ActionFailed
from livecell.actions.command import CommandSender
from livecell.actions.http_post import HttpPostSender
from livecell.actions.zmq_req import ZmqReqSender

PAYLOAD = json.dumps(death_event()).encode()


def command_sender(
    argv: tuple[str, ...], timeout_s: float, stop: threading.Event | None = None
) -> CommandSender:
    return CommandSender(argv, timeout_s, stop=stop or threading.Event())


def test_zmq_gets_reply() -> None:
    with ZmqPeer().serving() as peer:
        sender = ZmqReqSender(peer.endpoint, 2.0, stop=threading.Event())
        try:
            sender.send(PAYLOAD)
            sender.send(PAYLOAD)
        finally:
            sender.close()
    assert peer.received == [death_event(), death_event()]
    assert sender.last_reply == b"ok"


def test_zmq_lost_reply_then_fresh_socket() -> None:
    """Lazy pirate: after a reply times out, the next attempt works on a new socket."""
    with ZmqPeer(ignore_first=1).serving() as peer:
        sender = ZmqReqSender(peer.endpoint, 0.3, stop=threading.Event())
        try:
            started = time.monotonic()
            with pytest.raises(ActionFailed, match=r"no reply .* within 300 ms"):
                sender.send(PAYLOAD)
            assert 0.25 < time.monotonic() - started < 2.0
            sender.send(PAYLOAD)  # a stuck REQ socket would raise here (EFSM)
        finally:
            sender.close()
    assert peer.requests == 2
    assert peer.received == [death_event()]


def test_zmq_dead_peer_times_out() -> None:
    sender = ZmqReqSender(f"tcp://127.0.0.1:{dead_port()}", 0.2, stop=threading.Event())
    try:
        started = time.monotonic()
        with pytest.raises(ActionFailed, match="no reply"):
            sender.send(PAYLOAD)
        assert time.monotonic() - started < 2.0
    finally:
        sender.close()


def test_zmq_endpoint_it_cannot_connect_to_is_a_failed_attempt() -> None:
    sender = ZmqReqSender("tcp://*:5570", 1.0, stop=threading.Event())
    try:
        with pytest.raises(ActionFailed, match="cannot connect to tcp://\\*:5570"):
            sender.send(PAYLOAD)
    finally:
        sender.close()


def test_zmq_wait_cut_short_by_stop() -> None:
    stop = threading.Event()
    with ZmqPeer(never_reply=True).serving() as peer:
        sender = ZmqReqSender(peer.endpoint, 30.0, stop=stop)
        threading.Timer(0.1, stop.set).start()
        started = time.monotonic()
        with pytest.raises(ActionFailed):
            sender.send(PAYLOAD)
        sender.close()
    assert time.monotonic() - started < 1.0


def test_http_post_json() -> None:
    with HttpPeer().serving() as peer:
        HttpPostSender(peer.url, 2.0).send(PAYLOAD)
    assert peer.received == [death_event()]


def test_http_error_status_fails() -> None:
    with (
        HttpPeer(fail_first=1).serving() as peer,
        pytest.raises(ActionFailed, match="answered 500"),
    ):
        HttpPostSender(peer.url, 2.0).send(PAYLOAD)
    assert peer.received == []


def test_http_dead_peer_fails() -> None:
    with pytest.raises(ActionFailed, match="cannot POST"):
        HttpPostSender(f"http://127.0.0.1:{dead_port()}/x", 2.0).send(PAYLOAD)


@contextmanager
def raw_http_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A one-connection-at-a-time TCP server on 127.0.0.1 that reads a request and lets
    ``answer`` write whatever bytes it likes; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            with client:
                client.recv(65536)
                with contextlib.suppress(OSError):
                    answer(client)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/trigger"
    finally:
        stop.set()
        server.join(timeout=5)
        listener.close()


def test_http_redirect_is_a_failure_not_followed() -> None:
    def redirect(client: socket.socket) -> None:
        client.sendall(
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.2:9/elsewhere\r\n"
            b"Content-Length: 0\r\n\r\n"
        )

    with raw_http_server(redirect) as url, pytest.raises(ActionFailed, match="answered 302"):
        HttpPostSender(url, 2.0).send(PAYLOAD)


def test_http_server_answering_a_byte_at_a_time_is_cut_off_at_the_timeout() -> None:
    def trickle(client: socket.socket) -> None:
        client.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):  # 20 s of one header byte per 0.2 s
            client.sendall(b"X")
            time.sleep(0.2)

    with raw_http_server(trickle) as url:
        started = time.monotonic()
        with pytest.raises(ActionFailed, match="timed out"):
            HttpPostSender(url, 1.0).send(PAYLOAD)
        assert time.monotonic() - started < 2.0


def test_http_hanging_peer_times_out() -> None:
    with HttpPeer(hang_s=10).serving() as peer:
        started = time.monotonic()
        with pytest.raises(ActionFailed, match="timed out"):
            HttpPostSender(peer.url, 0.3).send(PAYLOAD)
        assert time.monotonic() - started < 2.0


def test_command_gets_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    command_sender(tuple(script_command(recording_script(tmp_path), out)), 10.0).send(PAYLOAD)
    assert recorded(out) == [death_event()]


def test_command_nonzero_exit_fails_with_stderr(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    command = tuple(script_command(recording_script(tmp_path, fail_first=1), out))
    with pytest.raises(ActionFailed, match="exited 1: refused run 1"):
        command_sender(command, 10.0).send(PAYLOAD)
    assert recorded(out) == []


def test_a_chatty_command_costs_no_memory_and_its_failure_quotes_the_end_of_stderr() -> None:
    chatty = (
        "head -c 20000000 /dev/zero; "  # 20 MB on stdout
        "head -c 100000 /dev/zero | tr '\\0' x >&2; echo ' the end' >&2; exit 3"
    )
    tracemalloc.start()
    try:
        with pytest.raises(ActionFailed) as failed:
            command_sender(("sh", "-c", chatty), 20.0).send(PAYLOAD)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 2_000_000, f"{peak_bytes} bytes held for a command's output"
    message = str(failed.value)
    assert message.startswith("sh exited 3: ")
    assert message.endswith("the end")
    assert len(message) < 600


def test_a_command_writing_standard_error_without_end_is_read_through_a_pipe() -> None:
    """Its standard error is a pipe drained as it comes (a file would grow without end:
    ``yes >&2`` writes about 1 GB a second), and only its end is kept."""
    with pytest.raises(ActionFailed) as failed:
        command_sender(("sh", "-c", "ls -l /proc/$$/fd/2 >&2; exit 1"), 10.0).send(PAYLOAD)
    assert "pipe:" in str(failed.value)
    tracemalloc.start()
    try:
        with pytest.raises(ActionFailed, match=r"ran past 1\.0 s and was killed"):
            command_sender(("sh", "-c", "yes >&2"), 1.0).send(PAYLOAD)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 2_000_000, f"{peak_bytes} bytes held for a command's output"


def test_a_stop_kills_a_running_command_and_what_it_started(tmp_path: Path) -> None:
    marker = tmp_path / "outlived"
    stop = threading.Event()
    sender = command_sender(("sh", "-c", f"sh -c 'sleep 2; touch {marker}' & wait"), 120.0, stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ActionFailed, match="the daemon is stopping"):
        sender.send(PAYLOAD)
    assert time.monotonic() - started < 1.5
    time.sleep(2.5)
    assert not marker.exists(), "a program the command started outlived the stop"


def test_a_command_that_never_reads_a_large_event_is_still_timed_out() -> None:
    started = time.monotonic()
    with pytest.raises(ActionFailed, match="killed"):
        command_sender(("sleep", "30"), 0.5).send(b"x" * 1_000_000)  # past the pipe buffer
    assert time.monotonic() - started < 3.0


def test_command_killed_after_timeout(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    command = tuple(script_command(recording_script(tmp_path, sleep_s=30), out))
    started = time.monotonic()
    with pytest.raises(ActionFailed, match="killed"):
        command_sender(command, 0.5).send(PAYLOAD)
    assert time.monotonic() - started < 5.0


def test_a_command_past_its_timeout_takes_what_it_started_with_it(tmp_path: Path) -> None:
    """A command that starts a program of its own: killing only the command would leave
    that program running (here it would write a file once the command is gone)."""
    marker = tmp_path / "outlived"
    command = ("sh", "-c", f"sh -c 'sleep 2; touch {marker}' & wait")
    with pytest.raises(ActionFailed, match="killed"):
        command_sender(command, 0.5).send(PAYLOAD)
    time.sleep(3.0)
    assert not marker.exists(), "a program the command started outlived it"


def test_command_missing_program_fails(tmp_path: Path) -> None:
    with pytest.raises(ActionFailed, match="cannot run"):
        command_sender((str(tmp_path / "no-such-program"),), 1.0).send(PAYLOAD)
