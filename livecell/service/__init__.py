"""The systemd side of ``livecell run``: the sd_notify protocol and the service heartbeat.

livecell owns no systemd library: the protocol is one AF_UNIX datagram of
``KEY=value`` lines sent to ``$NOTIFY_SOCKET`` (``sd_notify.py``). The daemon reads
``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` once, at its edge
(``NotifySettings.from_environ``), builds an ``SdNotifier`` and hands the pipeline a
``ServiceHeartbeat`` (``heartbeat.py``) that pings the watchdog and updates
``STATUS=`` from the analysis loop itself. Without ``NOTIFY_SOCKET`` every call is a
no-op. The unit file is ``deploy/systemd/livecell.service``; docs/service.md explains it.
"""

from livecell.service.heartbeat import ServiceHeartbeat, status_text
from livecell.service.sd_notify import NotifySettings, SdNotifier

__all__ = ["NotifySettings", "SdNotifier", "ServiceHeartbeat", "status_text"]
