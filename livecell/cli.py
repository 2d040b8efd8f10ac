"""The ``livecell`` command line (SPEC section 1).

Exit status: 0 success; 2 usage or configuration error, with a message naming
the key or argument; 1 any other failure. A user error never prints a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from livecell import __version__
from livecell.argtypes import non_negative, non_negative_float
from livecell.errors import ConfigError

if TYPE_CHECKING:
    from livecell.config import Config
    from livecell.simulation._protocol import Simulator

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# Commands that live in their own module: DESCRIPTION, add_arguments(parser), run(args).
_COMMANDS_IN_MODULES = (
    (
        "demo",
        "simulate a nanowell acquisition in real time and analyse it live (no config, no GPU)",
        "livecell.demo.command",
    ),
    (
        "evaluate",
        "score events, tracks or CTC results against ground truth",
        "livecell.evaluation.command",
    ),
    (
        "track",
        "track a folder of Cell Tracking Challenge masks and write CTC results",
        "livecell.tracking.command",
    ),
    (
        "train",
        "train a patch-state model on labelled images or simulated acquisitions",
        "livecell.training.command",
    ),
    (
        "export",
        "export a trained model to ONNX (and TensorRT), checked against torch",
        "livecell.engine.export_command",
    ),
    (
        "explain",
        "Grad-CAM overlays: why a patch was called what it was",
        "livecell.engine.explain_command",
    ),
)


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
    replay.add_argument(
        "--tracks",
        type=Path,
        default=None,
        metavar="CSV",
        help="nanowell tracks file to write (default: the config's sinks.tracks; give "
        "another to replay beside a daemon writing that one)",
    )
    replay.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="replay positions in parallel in N processes (same events, same ids; default 1)",
    )
    replay.set_defaults(handler=_replay)

    simulate = commands.add_parser(
        "simulate",
        help="the synthetic microscope: frames and their ground truth",
        description="Write a simulated acquisition into OUT/frames/ (or publish it on ZeroMQ) "
        "paced --interval seconds apart, and its ground truth into OUT/ground_truth/. "
        "Every simulator parameter can be set in a TOML file (--params); "
        "--show-params prints them all with their values.",
    )
    simulate.add_argument("out", type=Path, metavar="OUT", help="output folder")
    simulate.add_argument(
        "--kind",
        required=True,
        choices=["nanowell", "holotomo"],
        help="nanowell: a TIMING chip in phase contrast; holotomo: refractive-index "
        "holotomography with death states per patch",
    )
    simulate.add_argument("--frames", type=int, default=24, help="time points (default: 24)")
    simulate.add_argument(
        "--interval",
        type=non_negative_float,
        default=0.0,
        metavar="S",
        help="seconds between time points, in real time (default 0: as fast as possible)",
    )
    simulate.add_argument("--seed", type=non_negative, default=0, help="random seed (default: 0)")
    simulate.add_argument(
        "--zmq",
        metavar="ENDPOINT",
        default=None,
        help="publish frames to this endpoint (PUSH, connecting) instead of writing files",
    )
    simulate.add_argument(
        "--params",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML file of simulator parameters",
    )
    simulate.add_argument("--positions", type=int, default=None, help="stage positions")
    simulate.add_argument(
        "--size", type=int, default=None, metavar="PX", help="frame width and height in pixels"
    )
    simulate.add_argument(
        "--wells", type=int, default=None, help="nanowell: wells per side of the lattice"
    )
    simulate.add_argument(
        "--max-cells", type=int, default=None, help="nanowell: most cells in one well"
    )
    simulate.add_argument(
        "--channels",
        action="store_true",
        default=None,
        help="nanowell: add fluorescence channels (Annexin V, PI, labels)",
    )
    simulate.add_argument("--z", type=int, default=None, help="holotomo: z slices")
    simulate.add_argument(
        "--mip",
        action="store_true",
        default=None,
        help="holotomo: write the maximum intensity projection, not the volume",
    )
    simulate.add_argument(
        "--preview",
        action="store_true",
        help="also write PNGs of a few frames with the truth drawn on",
    )
    simulate.add_argument(
        "--show-params", action="store_true", help="print the resolved parameters and exit"
    )
    simulate.set_defaults(handler=_simulate)

    for name, help_text, module_name in _COMMANDS_IN_MODULES:
        module = import_module(module_name)
        command = commands.add_parser(name, help=help_text, description=module.DESCRIPTION)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)

    check = commands.add_parser(
        "check-config",
        help="validate a config and print it with every default filled in",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the TOML config to check")
    check.set_defaults(handler=_check_config)

    bench = commands.add_parser(
        "bench",
        help="time the stages and print a table (see benchmarks/)",
        description="Run a benchmark and print its table.",
    )
    bench.add_argument(
        "which",
        choices=[
            "ingest",
            "simulate",
            "engine",
            "tracking",
            "wells",
            "segmentation",
            "nanowell",
            "pipeline",
            "triggers",
            "dashboard",
        ],
        help="which benchmark",
    )
    bench.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="the benchmark's own options (see `livecell bench NAME --help`)",
    )
    bench.set_defaults(handler=_bench)
    return parser


STOPS_ON_SIGNALS = ("run", "replay", "demo")
"""Commands that take SIGTERM and SIGINT as a request to stop and finish cleanly (exit 0);
any other command so interrupted has not done its work: a failure, exit 1 (SPEC)."""


def _exit_before_start(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM while still importing or loading the config: nothing in hand, exit 0."""
    raise SystemExit(EXIT_OK)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM to a command that does not stop cleanly: as Ctrl-C."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_before_start)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in STOPS_ON_SIGNALS:
        signal.signal(signal.SIGTERM, _interrupt)
    from livecell.logs import configure_logging, stderr_is_journal

    configure_logging(
        level=args.log_level,
        json=args.log_json,
        syslog_priority=stderr_is_journal(os.environ, sys.stderr),
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"livecell: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command in STOPS_ON_SIGNALS:
            return EXIT_OK  # interrupted before its own stop handling was in place
        print(f"livecell {args.command}: interrupted, not finished", file=sys.stderr)
        if args.command == "train":
            print("(--resume continues from DIR/checkpoint.pt, if an epoch ended)", file=sys.stderr)
        return EXIT_FAILURE


def _check_config(args: argparse.Namespace) -> int:
    from livecell.analysis import check_model_folders, unused_model_keys
    from livecell.config import load_config

    config = load_config(args.file)
    check_model_folders(config)
    for note in unused_model_keys(config):
        print(f"livecell: note: {note}", file=sys.stderr)
    sys.stdout.write(config.to_toml())
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from livecell.config import load_config
    from livecell.daemon import run_daemon

    config = load_config(args.config)
    return _guarded(lambda: run_daemon(config).source_error is None)


def _refuse_rows_twice(config: Config, events: Path, *, tracks_key: str) -> None:
    """A replay into a new events file analyses every frame afresh: a tracks file that
    already holds rows would get each of them a second time."""
    from livecell.sinks.tracks_csv import holds_rows

    tracks = config.sinks.tracks
    if tracks is None or config.analysis.mode != "nanowell":
        return
    if events.is_file() and events.stat().st_size > 0:
        return  # a replay resumed: the frames already done are not analysed again
    if holds_rows(tracks):
        raise ConfigError(
            tracks_key,
            f"{tracks} already holds rows and {events} is new, so every frame's rows would "
            "be written a second time: give --tracks NEW.csv, or move the old file away",
        )


def _replay(args: argparse.Namespace) -> int:
    from livecell.config import load_config
    from livecell.daemon import replay
    from livecell.stream.dataset_follow import holds_datasets

    if not args.folder.is_dir():
        raise ConfigError("DIR", f"{args.folder} is not a folder")
    overrides: dict[str, Any] = {"source": {"kind": "watch", "path": str(args.folder.resolve())}}
    if args.tracks is not None:
        overrides["sinks"] = {"tracks": str(args.tracks.resolve())}
    config = load_config(args.config, overrides=overrides)
    events = args.events.resolve() if args.events else config.sinks.events
    where = "--events" if args.events else "sinks.events"
    if events.is_dir():
        raise ConfigError(where, f"{events} is a folder; give the events file")
    if any(folder.exists() and not folder.is_dir() for folder in events.parents):
        raise ConfigError(where, f"{events}: a folder on its path is a file")

    if args.workers < 1:
        raise ConfigError("--workers", f"must be 1 or more, not {args.workers}")
    _refuse_rows_twice(config, events, tracks_key="--tracks" if args.tracks else "sinks.tracks")

    def go() -> bool:
        had_events = events.is_file() and events.stat().st_size > 0
        if args.workers > 1 and holds_datasets(args.folder.resolve(), config.source):
            print(f"{args.folder} holds multi-image datasets: replayed in one process")
            args.workers = 1
        if args.workers > 1:
            from livecell.parallel_replay import replay_in_workers

            summary = replay_in_workers(config, args.folder.resolve(), events, args.workers)
        else:
            summary = replay(config, args.folder.resolve(), events, events_key=where)
        counts = ", ".join(f"{k}: {n}" for k, n in sorted(summary.events_by_kind.items()))
        print(f"replayed {args.folder}: {counts or 'no new events'}; events in {events}")
        if not counts and not had_events:
            patterns = ", ".join(config.source.patterns)
            print(
                f"livecell replay: no frames found in {args.folder} (no file matching "
                f"source.patterns {patterns}, no Micro-Manager or TCF dataset): is it the "
                "acquisition's folder?",
                file=sys.stderr,
            )
        if not counts and had_events:
            again = "--events (and --tracks)" if config.analysis.mode == "nanowell" else "--events"
            print(
                f"(frames already in {events} are not analysed again: give another {again} "
                "to analyse them afresh)"
            )
        if summary.analysis_failures:
            print(
                f"livecell replay: analysis failed on {summary.analysis_failures} frame(s), "
                f"whose frame events were written without analysis events; the first: "
                f"{summary.first_analysis_failure} (the log has each)",
                file=sys.stderr,
            )
        return summary.source_error is None

    return _guarded(go)


def _simulate(args: argparse.Namespace) -> int:
    from zmq.error import ZMQError

    from livecell.simulation.params import describe, load_params
    from livecell.simulation.run import RunOptions, run_simulation

    if args.frames < 1:
        raise ConfigError("--frames", "must be at least 1")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError("OUT", f"{args.out} is a file, not a folder")
    if args.params is not None and args.params.exists() and not args.params.is_file():
        raise ConfigError("--params", f"{args.params} is not a file")
    simulator: Simulator
    if args.kind == "nanowell":
        from livecell.simulation.nanowell import NanowellParams, NanowellSimulator

        nanowell = load_params(
            NanowellParams,
            args.params,
            {
                "positions": args.positions,
                "frame_size_px": args.size,
                "wells_per_side": args.wells,
                "max_cells_per_well": args.max_cells,
                "channels": args.channels,
            },
        )
        _refuse(args, "--z", "--mip", given=(args.z, args.mip), kind="nanowell")
        params: object = nanowell
        simulator = NanowellSimulator(nanowell, seed=args.seed)
    else:
        from livecell.simulation.holotomo import HolotomoParams, HolotomoSimulator

        holotomo = load_params(
            HolotomoParams,
            args.params,
            {
                "positions": args.positions,
                "size_px": args.size,
                "z_slices": args.z,
                "mip": args.mip,
            },
        )
        _refuse(
            args,
            "--wells",
            "--max-cells",
            "--channels",
            given=(args.wells, args.max_cells, args.channels),
            kind="holotomo",
        )
        params = holotomo
        simulator = HolotomoSimulator(holotomo, seed=args.seed)
    if args.show_params:
        sys.stdout.write(describe(params))
        return EXIT_OK
    removed = _remove_earlier_simulation(args.out)
    if removed:
        print(f"removed {removed} file(s) of an earlier simulation in {args.out}")
    options = RunOptions(
        frames=args.frames, interval_s=args.interval, zmq_endpoint=args.zmq, preview=args.preview
    )
    try:
        summary = run_simulation(simulator, args.out, options)
    except ZMQError as exc:
        raise ConfigError("--zmq", f"cannot use {args.zmq!r}: {exc}") from exc
    except OSError as exc:
        print(f"livecell simulate: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    deaths = sum(len(d) for d in summary.deaths.values())
    contacts = sum(len(c) for c in summary.contacts.values())
    where = f"ZeroMQ {args.zmq}" if args.zmq else f"{args.out / 'frames'}"
    print(
        f"simulated {args.frames} frames x {len(simulator.positions)} positions -> {where}; "
        f"truth in {args.out / 'ground_truth'} ({deaths} deaths, {contacts} contacts)"
    )
    return EXIT_OK


_SIMULATION_FILES = (
    "frames/*/t*.ome.tif",
    "ground_truth/*.csv",
    "ground_truth/*/TRA/man_track*",
    "preview/*_t*.png",
)


def _remove_earlier_simulation(out: Path) -> int:
    """Delete the files an earlier simulation into ``out`` wrote (by the simulator's own
    names, nothing else): a shorter run would otherwise leave its later frames and masks
    beside the new truth. How many were removed."""
    removed = 0
    for pattern in _SIMULATION_FILES:
        for path in out.glob(pattern):
            if path.is_file():
                path.unlink()
                removed += 1
    return removed


def _refuse(args: argparse.Namespace, *names: str, given: tuple[object, ...], kind: str) -> None:
    for name, value in zip(names, given, strict=True):
        if value is not None:
            raise ConfigError(name, f"does not apply to --kind {kind}")


def _bench(args: argparse.Namespace) -> int:
    benchmark = import_module(f"livecell.bench.{args.which}")
    status: int = benchmark.main(args.options)
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
