"""POST an event as JSON to an HTTP(S) URL; any 2xx response is success.

Environment proxies are ignored (a trigger goes to the microscope's own
control, usually on the same host or network), so the daemon's behaviour does
not depend on ``http_proxy`` in its environment. Redirects are not followed: a
3xx is a failure, since following one would turn the POST into a GET elsewhere
and report a trigger that was never delivered as sent. ``timeout_s`` bounds the
whole request: at the deadline the socket is shut, whatever read is under way,
so a server that answers one byte at a time cannot hold the action.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.parse

from livecell.actions._protocol import ActionFailed

_MAX_RESPONSE_BYTES = 65536


class HttpPostSender:
    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._timeout_s = timeout_s

    def send(self, payload: bytes) -> None:
        connection, path = self._connection()
        expired = threading.Event()

        def shut() -> None:
            expired.set()
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)

        deadline = threading.Timer(self._timeout_s, shut)
        deadline.daemon = True
        deadline.start()
        try:
            connection.request(
                "POST",
                path,
                body=payload,
                headers={"Content-Type": "application/json", "User-Agent": "livecell"},
            )
            response = connection.getresponse()
            response.read(_MAX_RESPONSE_BYTES)
            status, reason = int(response.status), response.reason
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set():
                raise self._timed_out() from None
            raise ActionFailed(f"cannot POST to {self._url}: {exc}") from None
        finally:
            deadline.cancel()
            connection.close()
        if expired.is_set():  # the shut socket read as the end of a (cut) answer
            raise self._timed_out()
        if not 200 <= status < 300:
            raise ActionFailed(f"{self._url} answered {status} {reason}")

    def _timed_out(self) -> ActionFailed:
        return ActionFailed(
            f"{self._url} gave no whole answer within {self._timeout_s} s (timed out)"
        )

    def _connection(self) -> tuple[http.client.HTTPConnection, str]:
        parts = urllib.parse.urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ActionFailed(f"cannot POST to {self._url}: not an http(s) URL")
        https = parts.scheme == "https"
        kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
        try:
            connection = kind(parts.hostname, parts.port, timeout=self._timeout_s)
        except ValueError as exc:  # a port that is no number
            raise ActionFailed(f"cannot POST to {self._url}: {exc}") from None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return connection, path

    def close(self) -> None:
        """Nothing held between requests."""
