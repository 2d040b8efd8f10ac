"""Wiring a configured pipeline for ``livecell run`` and ``livecell replay``.

This is the edge where files are locked, sockets bound, the metrics server
started and signals turned into a stop request. Everything it builds is handed
to ``Pipeline`` explicitly.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import structlog
import zmq

from livecell.analysis import build_stage
from livecell.config import Config
from livecell.errors import ConfigError, OutputWriteError
from livecell.frames import FrameKey
from livecell.journal import Journal
from livecell.metrics import Metrics, serve_metrics
from livecell.pipeline import Pipeline, PipelineProgress, PipelineSettings, RunSummary
from livecell.service import NotifySettings, SdNotifier, ServiceHeartbeat
from livecell.sinks import EventLog, EventSink, ZmqPublisher
from livecell.sinks.tracks_csv import set_aside
from livecell.stream import FrameSource
from livecell.stream.watch import WatchSource
from livecell.stream.zmq_source import ZmqSource

T = TypeVar("T")
log = structlog.get_logger("livecell.daemon")


class StateDirBusy(Exception):
    """Another livecell process holds this state_dir."""


@contextmanager
def _locked_state_dir(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateDirBusy(f"state_dir {state_dir} is in use by another livecell") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def _configured_path(key: str) -> Iterator[None]:
    """An OSError while making or opening what config ``key`` names is a configuration
    error naming the key (a state_dir that is a file, an events file in a folder that
    cannot be made), not a failure without one."""
    try:
        yield
    except OutputWriteError:  # a full disk is no configuration error: exit 1, as later
        raise
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise ConfigError(key, f"cannot use {where}{exc.strerror or exc}") from None


def run_daemon(
    config: Config,
    stop: threading.Event | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    extra_sinks: tuple[EventSink, ...] = (),
    on_ready: Callable[[], None] | None = None,
) -> RunSummary:
    """``livecell run``: until SIGTERM/SIGINT (or ``stop``).

    ``extra_sinks`` get every committed batch too, and ``on_ready`` is called once
    the stage is warm, before the first frame (``livecell demo`` uses both).

    Under systemd (``NOTIFY_SOCKET`` in ``environ``, default ``os.environ``):
    ``READY=1`` once the stage is warm, ``WATCHDOG=1`` and ``STATUS=`` from the
    analysis loop, ``STOPPING=1`` when a stop begins (docs/service.md).
    """
    stop = stop or threading.Event()
    if config.source.kind == "watch" and (
        config.source.path is None or not config.source.path.is_dir()
    ):
        raise ConfigError("source.path", f"{config.source.path} is not a folder")
    with ExitStack() as stack:
        notifier = SdNotifier(
            NotifySettings.from_environ(os.environ if environ is None else environ, os.getpid())
        )
        stack.callback(notifier.close)
        stack.callback(notifier.stopping)  # also when the run ends without a signal
        with _configured_path("state_dir"):
            stack.enter_context(_locked_state_dir(config.state_dir))
            journal = Journal.in_state_dir(
                config.state_dir, commit_interval_s=config.pipeline.journal_commit_interval_s
            )
        stack.callback(journal.close)
        _set_tracks_aside_if_analysed_again(config, journal)
        source: FrameSource
        if config.source.kind == "watch":
            source = WatchSource(config.source, journal, ignore_under=config.state_dir)
        else:
            source = _listening("source.endpoint", ZmqSource, config.source)
        heartbeat = ServiceHeartbeat(notifier) if notifier.enabled else None
        pipeline = _build(
            config,
            source,
            journal,
            config.sinks.events,
            stack,
            heartbeat=heartbeat,
            extra_sinks=extra_sinks,
        )
        # As a service, SIGHUP (a "reload", a logrotate script) must not end it; in a
        # terminal it still does, as for any foreground program.
        _stop_on_signals(stop, on_stop=notifier.stopping, ignore_hangup=notifier.enabled)
        pipeline.warm_up()
        if not stop.is_set():  # a stop during start-up: no READY=1 after STOPPING=1
            notifier.ready()  # only now: the model is loaded and has run once
        if on_ready is not None:
            on_ready()
        log.info(
            "started",
            source=config.source.kind,
            mode=config.analysis.mode,
            events=str(config.sinks.events),
            state_dir=str(config.state_dir),
        )
        summary = pipeline.run(stop)
        log.info("stopped", **summary.events_by_kind)
        return summary


def replay(
    config: Config,
    folder: Path,
    events_path: Path,
    *,
    owns: Callable[[FrameKey | None], bool] | None = None,
    events_key: str = "sinks.events",
) -> RunSummary:
    """``livecell replay``: every frame in ``folder`` once, as fast as possible, then return.

    ``owns`` limits it to some positions (``livecell.parallel_replay`` gives each
    worker process its share); ``events_key`` is what an unusable ``events_path`` is
    reported as (the command line's ``--events``, or the config's key).

    A private journal, so everything is analysed; events whose ids are already
    in ``events_path`` are not written again. Archives are read-only: rejected
    files are reported, never moved. Offline: no metrics server and no ZMQ PUB,
    so a replay runs beside a live daemon on the same config without taking
    its ports (or feeding old events to its live subscribers).
    """
    source_config = config.source.model_copy(update={"kind": "watch", "path": folder})
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="livecell-replay-") as tmp:
        journal = Journal.in_state_dir(
            Path(tmp), commit_interval_s=config.pipeline.journal_commit_interval_s
        )
        stack.callback(journal.close)
        source = WatchSource(
            source_config, journal, ignore_under=config.state_dir, follow=False, owns=owns
        )
        pipeline = _build(
            config, source, journal, events_path, stack, live=False, events_key=events_key
        )
        stop = threading.Event()
        _stop_on_signals(stop)
        return pipeline.run(stop)


def _listening(key: str, start: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``start(*args, **kwargs)``, something that binds (or connects) a socket; an
    address it cannot use is a configuration error naming ``key`` (taken by another
    program, or not this host's)."""
    try:
        return start(*args, **kwargs)
    except (OSError, zmq.ZMQError) as exc:
        raise ConfigError(key, f"cannot use that address: {exc.strerror or exc}") from None


def _build(
    config: Config,
    source: FrameSource,
    journal: Journal,
    events_path: Path,
    stack: ExitStack,
    *,
    live: bool = True,
    heartbeat: Callable[[PipelineProgress], None] | None = None,
    extra_sinks: tuple[EventSink, ...] = (),
    events_key: str = "sinks.events",
) -> Pipeline:
    """The pipeline; ``live=False`` (replay) leaves out the metrics server, the PUB sink
    and the triggers, and moves no file to quarantine."""
    metrics = Metrics()
    stage = build_stage(config, metrics, reported=journal.has_event)
    with _configured_path(events_key):
        event_log = EventLog(events_path)
    if live and config.metrics.address:
        server = _listening("metrics.address", serve_metrics, metrics, config.metrics.address)
        stack.callback(server.shutdown)
        stack.callback(server.server_close)
    sinks: list[EventSink] = []
    if live and config.sinks.zmq_pub:
        sinks.append(_listening("sinks.zmq_pub", ZmqPublisher, config.sinks.zmq_pub))
    if live and config.actions:  # a replay of an archive fires no triggers
        from livecell.actions import ActionSink

        sinks.append(ActionSink(config.actions, metrics.count_action))
    sinks.extend(extra_sinks)
    observers = []
    if live and config.dashboard.address:  # docs/dashboard.md
        from livecell.dashboard import open_dashboard
        from livecell.dashboard.service import backend_name

        dashboard = _listening(
            "dashboard.address",
            open_dashboard,
            config.dashboard.address,
            mode=config.analysis.mode,
            backend=backend_name(stage, config.analysis.mode, config.engine.backend),
            seed_events=events_path,
        )
        stack.callback(dashboard.close)  # the pipeline closes it too, as a sink; once is enough
        sinks.append(dashboard)
        observers.append(dashboard)
    return Pipeline(
        source=source,
        stage=stage,
        journal=journal,
        event_log=event_log,
        sinks=sinks,
        metrics=metrics,
        settings=PipelineSettings(
            queue_size=config.pipeline.queue_size,
            commit_batch=config.pipeline.commit_batch,
            shutdown_timeout_s=config.pipeline.shutdown_timeout_s,
            quarantine_dir=config.state_dir / "quarantine" if live else None,
        ),
        heartbeat=heartbeat,
        observers=observers,
    )


def _set_tracks_aside_if_analysed_again(config: Config, journal: Journal) -> None:
    """Frames still in the watched folder are analysed again when the events file went
    away: while the daemon was stopped (shorter than the journal says: ``Pipeline.recover``
    rebuilds the journal) or while it ran (the journal was emptied then). Their tracks rows
    go to a fresh tracks file, not a second time into the old one."""
    went_while_running = journal.pop_forgotten_while_running()
    tracks = config.sinks.tracks
    if tracks is None or config.analysis.mode != "nanowell":
        return
    events = config.sinks.events
    size = events.stat().st_size if events.is_file() else 0
    if size >= journal.events_offset() and not went_while_running:
        return
    aside = set_aside(tracks)
    if aside is not None:
        log.warning(
            "the events file went away since the tracks file was written: frames are "
            "analysed again, so the tracks file is set aside and a new one started",
            tracks=str(tracks),
            set_aside_as=str(aside),
        )


def _stop_on_signals(
    stop: threading.Event,
    on_stop: Callable[[], None] | None = None,
    *,
    ignore_hangup: bool = False,
) -> None:
    """SIGTERM and SIGINT set ``stop``; with ``ignore_hangup`` (the service: it has no
    reload, and SIGHUP would end it where systemd counts that a clean exit) SIGHUP is
    logged and ignored.

    The handlers run on the main thread between two bytecodes, maybe inside a log call
    that holds the log's lock, or a thread start that holds threading's: they only set
    events. Threads started here, beforehand, do the rest (``on_stop``, the log lines).
    """
    if threading.current_thread() is not threading.main_thread():
        return
    received: list[str] = []
    hangup = threading.Event()

    def report_stop() -> None:
        stop.wait()
        if on_stop is not None:
            on_stop()
        if received:
            log.info("stopping", signal=received[0])

    def report_hangups() -> None:
        while hangup.wait():
            hangup.clear()
            log.info(
                "signal ignored: livecell has no reload; restart it to apply a new config",
                signal="SIGHUP",
            )

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    threading.Thread(target=report_stop, name="livecell-stop", daemon=True).start()
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    if ignore_hangup:
        threading.Thread(target=report_hangups, name="livecell-sighup", daemon=True).start()
        signal.signal(signal.SIGHUP, lambda _signum, _frame: hangup.set())
