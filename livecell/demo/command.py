"""``livecell demo``: simulate a nanowell acquisition in real time and analyse it live.

The edge of the demo: it makes the output folder, picks the metrics port,
starts ``livecell simulate`` as a subprocess once the daemon's models are warm,
runs the daemon in-process (``run_daemon`` with a ``QueueSink``), prints events
as they are committed, stops the daemon once every frame the simulator wrote has
its ``frame`` event, and prints the summary. Ctrl-C stops early, with the summary.
Docs: docs/demo.md.
"""

from __future__ import annotations

import argparse
import errno
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from livecell.argtypes import non_negative, non_negative_float
from livecell.demo.sink import QueueSink
from livecell.demo.view import (
    DemoSummary,
    event_line,
    header_line,
    progress_line,
    summary_lines,
)
from livecell.errors import ConfigError

if TYPE_CHECKING:
    from livecell.config import Config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

WELL_PITCH_PX = 256  # the simulator's default chip: 2048 px frames, 8 x 8 wells
DEFAULT_WELLS = 3  # 3 x 3 wells, 768 x 768 px: keeps up with 0.5 s on 2 CPU cores
DEFAULT_SEED = 2  # a chip with deaths early enough to be called within 40 frames
DEFAULT_PORT = 9108
DEFAULT_DASHBOARD_PORT = 8108
_DRAIN_AFTER_SIMULATOR_S = 30.0  # simulator done, and no frame analysed for this long: stop

DESCRIPTION = (
    "A simulated nanowell microscope writes an acquisition in real time into a folder; the "
    "daemon analyses it live with the bundled models (no config, no GPU) and the events "
    "stream to this terminal and to the dashboard page (docs/dashboard.md). "
    "Ends with a summary: frames, events by kind, frame latency "
    "p50/p99 against the interval, and where the events, tracks and ground truth are "
    "(with the `livecell evaluate` command that scores them). Ctrl-C stops early. "
    "Details: docs/demo.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=40, metavar="N", help="time points (40)")
    parser.add_argument(
        "--interval",
        type=non_negative_float,
        default=0.5,
        metavar="S",
        help="seconds between time points, in real time (0.5)",
    )
    parser.add_argument(
        "--seed", type=non_negative, default=DEFAULT_SEED, help="simulator seed (2)"
    )
    parser.add_argument(
        "--wells",
        type=int,
        default=DEFAULT_WELLS,
        metavar="N",
        help=f"wells per side of the chip; frames are N x {WELL_PITCH_PX} px square "
        f"({DEFAULT_WELLS}: sized to keep up with 0.5 s on 2 CPU cores)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder for frames, ground truth, events and tracks (new or empty; default: a "
        "new livecell-demo-* folder in the system temp dir, kept and printed)",
    )
    parser.add_argument(
        "--port",
        "--metrics-port",
        dest="port",
        type=int,
        default=DEFAULT_PORT,
        metavar="P",
        help=f"serve Prometheus metrics on 127.0.0.1:P ({DEFAULT_PORT}; if taken, a free port "
        "is used and printed)",
    )
    parser.add_argument("--no-metrics", action="store_true", help="serve no metrics")
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=DEFAULT_DASHBOARD_PORT,
        metavar="P",
        help=f"serve the live dashboard page on http://127.0.0.1:P/ ({DEFAULT_DASHBOARD_PORT}; "
        "if taken, a free port is used and printed; docs/dashboard.md)",
    )
    parser.add_argument("--no-dashboard", action="store_true", help="serve no dashboard page")


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    out = _prepare_out(args.out)
    _quiet_logging(args)
    stdout = sys.stdout
    tty = stdout.isatty()
    address, port_note = ("", "off") if args.no_metrics else _metrics_address(args.port)
    page, page_note = ("", "off") if args.no_dashboard else _dashboard_address(args.dashboard_port)
    config = _demo_config(out, address, page)
    expected = args.frames  # one position
    size = args.wells * WELL_PITCH_PX
    _say(
        stdout,
        f"livecell demo: a {args.wells} x {args.wells}-well nanowell chip "
        f"({size} x {size} px), {args.frames} frames {args.interval:g} s apart, "
        f"seed {args.seed}",
    )
    _say(stdout, f"  folder    {out}")
    _say(stdout, f"  metrics   {port_note}")
    _say(stdout, f"  dashboard {page_note}")
    _say(stdout, "  loading the bundled models ...")

    sink = QueueSink()
    stop = threading.Event()
    simulator = _Simulator(out, args, size)
    view = _View(
        sink,
        stdout,
        tty=tty,
        expected=expected,
        interval_s=args.interval,
        simulator=simulator,
        stop=stop,
    )

    def ready() -> None:
        _say(stdout, "  models ready; the microscope starts now\n")
        _say(stdout, header_line())
        simulator.start()
        view.start()

    from livecell.daemon import StateDirBusy, run_daemon
    from livecell.sinks import EventLogLocked

    problems: list[str] = []
    try:
        result = run_daemon(config, stop, environ={}, extra_sinks=(sink,), on_ready=ready)
    except (StateDirBusy, EventLogLocked, OSError) as exc:
        print(f"livecell demo: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        simulator.stop()
        view.finish()
    if result.source_error is not None:
        problems.append(f"the frame source failed: {result.source_error}")
    if result.analysis_failures:
        problems.append(
            f"analysis failed on {result.analysis_failures} frame(s); the first: "
            f"{result.first_analysis_failure}"
        )
    sim_problem = simulator.problem()
    if sim_problem:
        problems.append(sim_problem)
    if sink.dropped:
        problems.append(f"{sink.dropped} events were not shown (the terminal fell behind)")
    done = result.count("frame") + result.count("rejected")
    summary = DemoSummary(
        frames_expected=expected,
        frames_done=done,
        events_by_kind=result.events_by_kind,
        latencies_s=tuple(result.frame_latencies_s),
        interval_s=args.interval,
        out_dir=out,
        events_path=config.sinks.events,
        tracks_path=config.sinks.tracks or out / "tracks.csv",
        ground_truth=out / "ground_truth",
        stopped_early=done < expected,
        problems=tuple(problems),
    )
    stdout.write("\n" + "\n".join(summary_lines(summary)) + "\n")
    stdout.flush()
    failed = result.source_error is not None or (sim_problem is not None and not view.interrupted)
    return EXIT_FAILURE if failed else EXIT_OK


def _check_args(args: argparse.Namespace) -> None:
    if args.frames < 1:
        raise ConfigError("--frames", "must be at least 1")
    if not 3 <= args.wells <= 8:  # 2 x 2 or fewer: every well is an edge well, left out
        raise ConfigError("--wells", "must be 3 to 8")
    if not 1 <= args.port <= 65535:
        raise ConfigError("--port", "must be a TCP port, 1 to 65535")
    if not 1 <= args.dashboard_port <= 65535:
        raise ConfigError("--dashboard-port", "must be a TCP port, 1 to 65535")


def _prepare_out(out: Path | None) -> Path:
    if out is None:
        return Path(tempfile.mkdtemp(prefix="livecell-demo-")).resolve()
    out = out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError("--out", f"{out} must be a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _quiet_logging(args: argparse.Namespace) -> None:
    """The terminal is the demo's view: daemon logs only from warnings up, unless debugging."""
    if args.log_level in ("debug", "warning", "error"):
        return
    from livecell.logs import configure_logging

    configure_logging(level="warning", json=args.log_json)


def _metrics_address(port: int) -> tuple[str, str]:
    """``(address, what to print)``: ``port`` if free on 127.0.0.1, else a free one."""
    return _local_address(port, "/metrics", "--port")


def _dashboard_address(port: int) -> tuple[str, str]:
    """``(address, what to print)`` for the page: ``port`` if free on 127.0.0.1, else a free one."""
    return _local_address(port, "/", "--dashboard-port")


def _local_address(port: int, path: str, option: str) -> tuple[str, str]:
    if _port_free(port):
        return f"127.0.0.1:{port}", f"http://127.0.0.1:{port}{path}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = int(s.getsockname()[1])
    return (
        f"127.0.0.1:{free}",
        f"http://127.0.0.1:{free}{path} (port {port} is taken; {option} P to choose)",
    )


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _demo_config(out: Path, metrics_address: str, dashboard_address: str = "") -> Config:
    from livecell.config import config_from_dict

    (out / "frames").mkdir(exist_ok=True)
    raw: dict[str, Any] = {
        "state_dir": "state",
        "source": {"kind": "watch", "path": "frames"},
        "analysis": {"mode": "nanowell"},
        # one commit per frame: its events show as soon as it is analysed, even when behind
        "pipeline": {"commit_batch": 1},
        "sinks": {"events": "events.jsonl", "tracks": "tracks.csv"},
        "metrics": {"address": metrics_address},
        "dashboard": {"address": dashboard_address},
    }
    return config_from_dict(raw, base_dir=out)


def _say(stream: IO[str], line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


class _Simulator:
    """``livecell simulate`` in a subprocess of its own session (Ctrl-C is the demo's)."""

    def __init__(self, out: Path, args: argparse.Namespace, size: int) -> None:
        self._command = [
            sys.executable,
            "-P",  # no current folder on sys.path: a stray rich.py there must not shadow rich
            "-m",
            "livecell",
            "--log-level",
            "warning",
            "simulate",
            str(out),
            "--kind",
            "nanowell",
            "--frames",
            str(args.frames),
            "--interval",
            str(args.interval),
            "--seed",
            str(args.seed),
            "--size",
            str(size),
            "--wells",
            str(args.wells),
        ]
        self._log_path = out / "simulator.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._stopped = False

    def start(self) -> None:
        with self._log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,
                cwd=self._log_path.parent,
            )

    def finished(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    def failed(self) -> bool:
        return self.finished() and self._process is not None and self._process.returncode != 0

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        self._stopped = True
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def problem(self) -> str | None:
        process = self._process
        if process is None:
            return "the simulator never started"
        if self._stopped or process.returncode in (0, None):
            return None
        tail = self._log_path.read_text(errors="replace").strip().splitlines()[-3:]
        detail = " / ".join(tail) or "no message"
        return f"the simulator exited with status {process.returncode}: {detail}"


class _View:
    """Consumes the sink's queue on its own thread; prints rows; sets ``stop`` when done."""

    def __init__(
        self,
        sink: QueueSink,
        stream: IO[str],
        *,
        tty: bool,
        expected: int,
        interval_s: float,
        simulator: _Simulator,
        stop: threading.Event,
    ) -> None:
        self._sink = sink
        self._stream = stream
        self._tty = tty
        self._expected = expected
        self._interval_s = interval_s
        self._simulator = simulator
        self._stop = stop
        self._done = 0
        self._last_latency_s: float | None = None
        self._progress_shown = False
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="livecell-demo-view", daemon=True)
        self.interrupted = False

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        """After the daemon returned: show what is left in the queue, end the progress line."""
        self.interrupted = self._sink.frames_seen < self._expected
        self._finished.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._progress_shown:
            self._stream.write("\n")
            self._stream.flush()

    def _loop(self) -> None:
        progress_at = time.monotonic()  # the last frame analysed (or the start)
        while True:
            try:
                record = self._sink.records.get(timeout=0.2)
            except queue.Empty:
                if self._finished.is_set():
                    return
                record = None
            if record is not None:
                self._show(record)
                if record.get("kind") in ("frame", "rejected"):
                    progress_at = time.monotonic()
            if self._stop.is_set():
                continue
            if self._simulator.finished():
                all_done = self._sink.frames_seen >= self._expected
                stalled = time.monotonic() - progress_at > _DRAIN_AFTER_SIMULATOR_S
                if all_done or stalled or self._simulator.failed():
                    self._stop.set()

    def _show(self, record: Any) -> None:
        kind = record.get("kind")
        if kind == "frame":
            self._done += 1
            latency = record.get("latency_s")
            if isinstance(latency, int | float):
                self._last_latency_s = float(latency)
            self._progress()
            return
        line = event_line(record, colour=self._tty)
        if line is None:
            return
        if self._tty and self._progress_shown:
            self._stream.write("\r\x1b[K")
        self._stream.write(line + "\n")
        if kind == "rejected":
            self._done += 1
        if self._tty:
            self._write_progress()
        self._stream.flush()

    def _progress(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[K")
            self._write_progress()
        elif self._done % 10 == 0 or self._done >= self._expected:
            self._stream.write(self._progress_text() + "\n")
        self._stream.flush()

    def _write_progress(self) -> None:
        self._stream.write(self._progress_text(colour=True))
        self._progress_shown = True

    def _progress_text(self, *, colour: bool = False) -> str:
        return progress_line(
            self._done, self._expected, self._last_latency_s, self._interval_s, colour=colour
        )
