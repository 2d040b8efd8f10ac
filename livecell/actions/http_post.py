"""POST an event as JSON to an HTTP(S) URL; any 2xx response is success.

Environment proxies are ignored (a trigger goes to the microscope's own
control, usually on the same host or network), so the daemon's behaviour does
not depend on ``http_proxy`` in its environment.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

from livecell.actions._protocol import ActionFailed

_MAX_RESPONSE_BYTES = 65536


class HttpPostSender:
    def __init__(self, url: str, timeout_s: float) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def send(self, payload: bytes) -> None:
        request = urllib.request.Request(
            self._url,
            data=payload,
            headers={"Content-Type": "application/json", "User-Agent": "livecell"},
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                response.read(_MAX_RESPONSE_BYTES)
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise ActionFailed(f"{self._url} answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise ActionFailed(f"cannot POST to {self._url}: {reason}") from None
        if not 200 <= status < 300:
            raise ActionFailed(f"{self._url} answered {status}")

    def close(self) -> None:
        """Nothing held between requests."""
