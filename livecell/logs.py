"""structlog set-up: readable on a terminal, JSON lines otherwise (journald, files).

Called once by the command line; importing livecell never touches logging.
Log lines about a frame carry ``acquisition``, ``position`` and ``t`` (bound by
the pipeline).

Under systemd, stderr goes to the journal, which files every line at the unit's
default priority unless the line starts with ``<N>`` (``sd-daemon(3)``): so when
stderr is the journal's stream, each line is prefixed with its level's syslog
priority, and ``journalctl -p warning`` shows the warnings and errors.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}


def stderr_is_journal(environ: Mapping[str, str], stderr: TextIO) -> bool:
    """True when ``stderr`` is the stream systemd connected to the journal: the
    ``device:inode`` in ``$JOURNAL_STREAM`` is that file's (``systemd.exec(5)``), not
    one the service redirected its stderr to."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat(stderr.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):  # no such variable, or stderr is not a file
        return False


def configure_logging(
    *, level: str = "info", json: bool | None = None, syslog_priority: bool = False
) -> None:
    """``syslog_priority``: start each line with ``<N>``, its level's priority (journald)."""
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info if use_json else structlog.dev.set_exc_info,
            _prefixed_with_priority(renderer) if syslog_priority else renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def _prefixed_with_priority(renderer: structlog.types.Processor) -> structlog.types.Processor:
    def render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        priority = SYSLOG_PRIORITY.get(str(event_dict.get("level", "")), SYSLOG_PRIORITY["info"])
        line = renderer(logger, method, event_dict)
        return f"<{priority}>{line}" if isinstance(line, str) else line

    return render
