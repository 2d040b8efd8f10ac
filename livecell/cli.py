"""The ``livecell`` command line (SPEC section 1).

Exit status: 0 success; 2 usage or configuration error, with a message naming
the key or argument; 1 any other failure. A user error never prints a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from livecell import __version__
from livecell.errors import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"livecell: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="livecell",
        description="Real-time analysis daemon for live-cell microscopy.",
    )
    parser.add_argument("--version", action="version", version=f"livecell {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (default: info)",
    )
    parser.add_argument(
        "--log-json",
        action="store_true",
        default=None,
        help="log JSON lines even on a terminal (default: JSON only when not a terminal)",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="the daemon, in the foreground (what systemd runs)",
        description="Watch the configured source and analyse frames until SIGTERM or SIGINT; "
        "then finish the frames in hand, flush the sinks and exit 0.",
    )
    run.add_argument("-c", "--config", type=Path, required=True, help="the TOML config file")
    run.set_defaults(handler=_run)

    replay = commands.add_parser(
        "replay",
        help="analyse a finished acquisition folder as fast as possible",
        description="Analyse every frame in DIR once with the same pipeline and the same "
        "event ids as `livecell run`, then exit.",
    )
    replay.add_argument("folder", type=Path, metavar="DIR", help="the acquisition folder")
    replay.add_argument("-c", "--config", type=Path, required=True, help="the TOML config file")
    replay.add_argument(
        "--events",
        type=Path,
        default=None,
        metavar="OUT",
        help="events file to write (default: the config's sinks.events); "
        "events already in it are not written again",
    )
    replay.set_defaults(handler=_replay)

    check = commands.add_parser(
        "check-config",
        help="validate a config and print it with every default filled in",
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=_check_config)

    bench = commands.add_parser(
        "bench",
        help="time the stages and print a table (see benchmarks/)",
        description="Run a benchmark and print its table.",
    )
    bench.add_argument("which", choices=["ingest"], help="which benchmark")
    bench.add_argument("--frames", type=int, default=300, help="frames to send (default: 300)")
    bench.set_defaults(handler=_bench)
    return parser


def _exit_before_start(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM while still importing or loading the config: nothing in hand, exit 0."""
    raise SystemExit(EXIT_OK)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_before_start)
    parser = build_parser()
    args = parser.parse_args(argv)
    from livecell.logs import configure_logging

    configure_logging(level=args.log_level, json=args.log_json)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"livecell: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def _check_config(args: argparse.Namespace) -> int:
    from livecell.config import load_config

    config = load_config(args.file)
    sys.stdout.write(config.to_toml())
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from livecell.config import load_config
    from livecell.daemon import run_daemon

    config = load_config(args.config)
    return _guarded(lambda: run_daemon(config).source_error is None)


def _replay(args: argparse.Namespace) -> int:
    from livecell.config import load_config
    from livecell.daemon import replay

    if not args.folder.is_dir():
        raise ConfigError("DIR", f"{args.folder} is not a folder")
    overrides = {"source": {"kind": "watch", "path": str(args.folder.resolve())}}
    config = load_config(args.config, overrides=overrides)
    events = args.events.resolve() if args.events else config.sinks.events

    def go() -> bool:
        summary = replay(config, args.folder.resolve(), events)
        counts = ", ".join(f"{k}: {n}" for k, n in sorted(summary.events_by_kind.items()))
        print(f"replayed {args.folder}: {counts or 'no new events'}; events in {events}")
        return summary.source_error is None

    return _guarded(go)


def _bench(args: argparse.Namespace) -> int:
    from livecell.bench import ingest

    status: int = ingest.main(["--frames", str(args.frames)])
    return status


def _guarded(work: Callable[[], bool]) -> int:
    """Run ``work``; known operational failures become one clear line and exit 1."""
    from livecell.daemon import StateDirBusy
    from livecell.sinks import EventLogLocked

    try:
        return EXIT_OK if work() else EXIT_FAILURE
    except (StateDirBusy, EventLogLocked, FileNotFoundError, PermissionError) as exc:
        print(f"livecell: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(
            f"livecell: {exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
