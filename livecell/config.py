"""The one configuration model: a TOML file validated once at start-up.

Every key has a default except what cannot be guessed (the watched folder).
Unknown keys are errors, so a typo never silently changes behaviour. Relative
paths are resolved against the config file's folder. ``load_config`` is the
only entry point; the resulting ``Config`` is passed down explicitly.
"""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from livecell.errors import ConfigError
from livecell.events import (
    CELL_TYPE,
    CONTACT_END,
    CONTACT_START,
    DEATH,
    EARLY_NECROPTOSIS,
    KINDS,
)

DEFAULT_PATH_REGEX = r"(?:^|/)(?P<position>[^/]+)/[^/]*?(?P<t>\d+)[^/\d]*$"


class _Section(BaseModel):
    # strict: `polling = "yes"` or `settle_s = true` is an error, not a guess;
    # paths and lists (TOML has no tuples) opt out field by field.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


class SourceConfig(_Section):
    kind: Literal["watch", "zmq"] = Field("watch", description="where frames come from")
    path: Path | None = Field(
        None, strict=False, description="watch: the root folder, watched recursively"
    )
    patterns: tuple[str, ...] = Field(
        ("*.tif", "*.tiff"), strict=False, description="watch: file name globs"
    )
    format: Literal["auto", "tiff", "ndtiff", "mmstack", "tcf"] = Field(
        "auto",
        description="watch: what the microscope writes: one TIFF per frame (tiff), Micro-Manager "
        "NDTiff or OME-TIFF stacks (ndtiff, mmstack), Tomocube TCF (tcf); auto: each dataset "
        "by its file names (NDTiff.index, *_MMStack*.ome.tif, *.tcf), other TIFFs one per frame",
    )
    stack: bool = Field(
        True,
        description="ndtiff, mmstack: one frame per position and time point, its z-slices and "
        "channels stacked (ZCYX); false: one frame per image, channel and z in the position name",
    )
    tcf_view: Literal["mip", "volume"] = Field(
        "mip", description="tcf: the 2D maximum projection (YX) or the 3D volume (ZYX) per frame"
    )
    polling: bool = Field(False, description="watch: poll instead of inotify (network shares)")
    poll_interval_s: float = Field(0.25, gt=0, le=60, description="watch: polling period")
    settle_s: float = Field(
        1.0, ge=0, le=3600, description="watch: how long a file must be unchanged and parsable"
    )
    open_wait_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="watch, inotify: a parsable file seen being written is read at its close, "
        "or once unchanged this long if no close comes (a missed close); 0: once settled",
    )
    dataset_idle_s: float = Field(
        3600.0,
        gt=0,
        description="watch: a followed dataset that is not finished and has not changed for "
        "this long (a crashed writer) is let go, its files closed, until one changes again",
    )
    axes: Literal["YX", "ZYX", "CYX", "ZCYX"] = Field(
        "YX", description="axes of files without OME metadata"
    )
    path_regex: str = Field(
        DEFAULT_PATH_REGEX,
        description="watch: regex on the file path with named groups position and t "
        "(and optionally acquisition)",
    )
    acquisition: str = Field(
        "",
        description="watch: acquisition name; empty: the folders between the watched folder "
        "and the file, less the position's (run2 for run2/Pos0/img_1.tif), else the watched "
        "folder's name",
    )
    endpoint: str = Field("tcp://127.0.0.1:5555", description="zmq: endpoint")
    socket: Literal["pull", "sub"] = Field("pull", description="zmq: socket type")
    bind: bool = Field(True, description="zmq: bind (true) or connect (false)")
    max_frame_mib: float = Field(
        1024.0,
        gt=0,
        description="largest accepted frame, decoded: a ZeroMQ pixel buffer, or a compressed "
        "file's pixels (a small compressed TIFF can declare gigabytes); larger are rejected",
    )
    receive_hwm: int = Field(
        4, ge=1, description="zmq: messages buffered in the socket before the sender is pushed back"
    )

    @field_validator("path", mode="before")
    @classmethod
    def _path_named(cls, value: Any) -> Any:
        return _not_empty(value, "needs a folder name (empty would watch the config's own folder)")

    @field_validator("path_regex")
    @classmethod
    def _regex_has_groups(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        missing = {"position", "t"} - set(compiled.groupindex)
        if missing:
            raise ValueError(f"needs the named groups position and t; missing {sorted(missing)}")
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns_not_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one glob pattern")
        return value

    @field_validator("endpoint")
    @classmethod
    def _zmq_endpoint(cls, value: str) -> str:
        return _check_zmq_endpoint(value)


class PipelineConfig(_Section):
    queue_size: int = Field(
        2,
        ge=1,
        le=1024,
        description="frames waiting for analysis, at most (memory: this many frames)",
    )
    commit_batch: int = Field(
        32,
        ge=1,
        le=4096,
        description="frames whose events share one fsync, at most (a batch also closes "
        "after 0.2 s of analysis, so slow frames are committed one by one)",
    )
    journal_commit_interval_s: float = Field(
        1.0,
        ge=0,
        le=60,
        description="the journal (an index of the events file) is committed at most this often",
    )
    shutdown_timeout_s: float = Field(
        8.0, gt=0, description="on SIGTERM, time allowed to finish queued frames"
    )


class AnalysisConfig(_Section):
    mode: Literal["none", "patches", "nanowell"] = Field(
        "none", description="none: frame events only"
    )


NANOWELL_MODEL_KEYS = ("segmentation_model", "cell_type_model", "death_model", "contact_model")
"""The nanowell keys that name a model folder (empty: the bundled model)."""


class NanowellConfig(_Section):
    """Nanowell mode (``analysis.mode = "nanowell"``): wells, segmentation, tracking, fates."""

    well_edge_margin_px: float = Field(
        10.0,
        ge=0,
        description="wells closer than this to the first frame's edge are left out (give the "
        "stage's drift bound, so that drift never cuts a well that has an id)",
    )
    segmenter: Literal["unet", "classical"] = Field(
        "unet", description="unet: the bundled (or given) model; classical: no model needed"
    )
    segmentation_model: Path | None = Field(
        None, strict=False, description="U-Net model folder; empty: the bundled one"
    )
    cell_type_model: Path | None = Field(
        None, strict=False, description="cell-type sequence model folder; empty: the bundled one"
    )
    death_model: Path | None = Field(
        None, strict=False, description="death sequence model folder; empty: the bundled one"
    )
    contact_rule: Literal["net", "model", "adjacency"] = Field(
        "net",
        description="net: the contact net (a small CNN) judges each pair of neighbouring "
        "cells from the pixels where they come closest; model: a logistic model over four "
        "measurements of their masks and the U-Net's foreground between them "
        "(docs/nanowell.md, Contacts); adjacency: touching masks, as always with the "
        "classical segmenter",
    )
    contact_model: Path | None = Field(
        None,
        strict=False,
        description="contact net model folder (livecell train --task contact); empty: the "
        "bundled one",
    )
    contact_min_track_frames: int = Field(
        6,
        ge=0,
        le=1000,
        description="contacts of a track that appeared mid-acquisition wait until it has "
        "lived this many frames, and go if it ends sooner (cut-off pieces and debris make "
        "short-lived tracks that touch their neighbours); 0: no wait",
    )
    position_idle_rounds: int = Field(
        4,
        ge=1,
        le=1000,
        description="a position is finished (its last track rows written, its state freed) "
        "once the stage has analysed this many frames per open position without one of it; "
        "a later frame of it starts it afresh, with new track ids",
    )
    smoothing_lambda: float = Field(
        0.0,
        ge=0,
        description="weight of the curvature term of the track smoothing QP; 0 keeps the "
        "measured centroids and fills missed frames on a straight line (docs/nanowell.md: "
        "effectors turn within one 5-min frame, so smoothing moves centroids off the cell)",
    )
    smoothing_lag_frames: int = Field(
        3, ge=0, le=100, description="frames a tracks-file row waits for later frames to smooth it"
    )
    smoothing_window_frames: int = Field(
        24, ge=2, le=1000, description="frames the online smoother solves over"
    )
    death_threshold: float = Field(
        0.9, gt=0, lt=1, description="a track is dead once its monotone death probability is this"
    )
    death_confirm_frames: int = Field(
        3, ge=1, le=20, description="frames the death probability must hold before it counts"
    )
    death_min_track_frames: int = Field(
        8,
        ge=1,
        le=1000,
        description="no death is called on a track younger than this (late tracks in a well "
        "are mostly segmentation fragments)",
    )
    death_onset_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="a death's onset is the frame from which the per-frame death "
        "probability stays above this on balance (read at the deciding frame)",
    )
    death_onset_context_frames: int = Field(
        5,
        ge=-1,
        le=100,
        description="a frame's death probability for the onset is the mean over the windows "
        "that reach at least this many frames past it; -1: the deciding window alone",
    )
    death_arrest: bool = Field(
        True,
        description="use the track's motion on the chip: no death is called while the cell "
        "still crawls, and its onset moves to the frame the cell stopped (docs/nanowell.md); "
        "false: the death model alone",
    )
    death_arrest_before_frames: int = Field(
        16, ge=0, le=100, description="arrest: frames before the model's onset searched"
    )
    death_arrest_after_frames: int = Field(
        2, ge=0, le=100, description="arrest: frames after the model's onset searched"
    )
    death_arrest_window_frames: int = Field(
        6, ge=2, le=100, description="arrest: steps compared on each side of a change point"
    )
    death_arrest_contrast: float = Field(
        3.0, ge=1, description="arrest: median step before / median step after, at least"
    )
    death_arrest_still_px: float = Field(
        2.0,
        gt=0,
        description="arrest: a still cell's median step is under this (drift removed; a dead "
        "cell's centroid jitters 0.1-2 px as its mask changes)",
    )
    death_arrest_crawl_frames: int = Field(
        3,
        ge=0,
        le=100,
        description="no death is called while the median step over the last this many frames "
        "is death_arrest_still_px or more; 0: calls never wait for the cell to stop",
    )
    death_apoptosis_hold_frames: int = Field(
        8,
        ge=0,
        le=100,
        description="an apoptosis is called only once its onset is this many frames old: a "
        "cell rounding up to divide looks like early apoptosis until it divides (15-40 min; "
        "8 frames at 5 min); 0: no hold",
    )
    early_necroptosis_threshold: float = Field(
        0.5, gt=0, lt=1, description="necroptosis probability that flags early necroptosis"
    )
    cell_type_min_confidence: float = Field(
        0.8, gt=0, le=1, description="a cell_type event needs at least this mean confidence"
    )
    cell_type_stable_frames: int = Field(
        3, ge=1, le=100, description="frames the cell type must stay the same before its event"
    )

    @field_validator(*NANOWELL_MODEL_KEYS, mode="before")
    @classmethod
    def _empty_is_bundled(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_serializer(*NANOWELL_MODEL_KEYS)
    def _bundled_is_empty(self, value: Path | None) -> str:
        return "" if value is None else str(value)

    @model_validator(mode="after")
    def _lag_inside_window(self) -> NanowellConfig:
        if self.smoothing_lag_frames >= self.smoothing_window_frames:
            raise ValueError("smoothing_lag_frames must be smaller than smoothing_window_frames")
        return self


class PatchesConfig(_Section):
    """Patch mode (``analysis.mode = "patches"``): MIP, tiling, empty cut, per-patch states."""

    patch_size_px: int = Field(
        160, ge=16, le=4096, description="patch side in pixels (patches.csv uses 160)"
    )
    foreground_ratio_min: float = Field(
        0.001,
        ge=0,
        le=1,
        description="a patch with a smaller fraction of pixels above the frame's global Otsu "
        "threshold is skipped as empty (state -1)",
    )
    confirm_frames: int = Field(
        3, ge=1, le=100, description="frames a death state must hold before it is reported"
    )
    death_min_confidence: float = Field(
        0.8,
        gt=0,
        le=1,
        description="a frame counts towards a death state only with at least this probability",
    )
    early_necroptosis_threshold: float = Field(
        0.4, gt=0, le=1, description="necroptosis probability that flags early necroptosis"
    )
    early_necroptosis_frames: int = Field(
        2, ge=1, le=100, description="frames in a row the necroptosis probability must hold"
    )
    model: Path | None = Field(
        None,
        strict=False,
        description="patch model folder (model.onnx + model_card.json); empty: the bundled "
        "holotomo_states",
    )
    batch_size: int = Field(64, ge=1, le=4096, description="patches per engine call, at most")
    threads: int = Field(
        0, ge=0, le=256, description="ONNX Runtime intra-op threads; 0: the library chooses"
    )
    positions_kept: int = Field(
        256,
        ge=1,
        le=100_000,
        description="patch states are kept for this many positions, the ones with the latest "
        "frames; a position past them is freed, and a later frame of it starts afresh "
        "(deaths already reported are not reported again)",
    )

    @field_validator("model", mode="before")
    @classmethod
    def _empty_is_bundled(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_serializer("model")
    def _bundled_is_empty(self, value: Path | None) -> str:
        return "" if value is None else str(value)


class EngineConfig(_Section):
    backend: Literal["auto", "onnxruntime", "torch", "tensorrt", "triton"] = "auto"
    model: str = Field("", description="empty: the bundled model for the mode")


class SinksConfig(_Section):
    events: Path = Field(
        Path("events.jsonl"), strict=False, description="the JSON Lines events file"
    )
    tracks: Path | None = Field(
        Path("tracks.csv"), strict=False, description="nanowell mode; empty: off"
    )
    zmq_pub: str = Field("", description="ZMQ PUB endpoint for events; empty: off")

    @field_validator("events", mode="before")
    @classmethod
    def _events_named(cls, value: Any) -> Any:
        return _not_empty(value, "needs a file name: the events file cannot be turned off")

    @field_validator("tracks", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("zmq_pub")
    @classmethod
    def _zmq_endpoint(cls, value: str) -> str:
        return "" if value == "" else _check_zmq_endpoint(value)

    @field_serializer("tracks")
    def _off_is_empty(self, value: Path | None) -> str:
        return "" if value is None else str(value)


class MetricsConfig(_Section):
    address: str = Field("127.0.0.1:9108", description="host:port for /metrics; empty: off")

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return _check_address(value)


class DashboardConfig(_Section):
    address: str = Field("", description="host:port of the live page; empty: off")

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        return _check_address(value)


class ActionConfig(_Section):
    """One ``[[actions]]`` entry (SPEC section 7, docs/actions.md): a filter and one target."""

    kind: str = Field(description="event kind that fires the action, e.g. death")
    pathway: Literal["apoptosis", "necroptosis", "necrosis", "death"] | None = Field(
        None, description="only events with this pathway; unset: any"
    )
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="only events with confidence >= this; unset: any"
    )
    well: str | None = Field(
        None, description="only events in this well: an id (r001c002) or a glob; unset: any"
    )
    zmq: str | None = Field(None, description="target: ZMQ REQ endpoint; waits for a reply")
    http: str | None = Field(None, description="target: URL the event is POSTed to as JSON")
    command: tuple[str, ...] | None = Field(
        None, strict=False, description="target: argv run with the event JSON on standard input"
    )
    timeout_s: float = Field(5.0, gt=0, le=600, description="reply / response / command time limit")
    retries: int = Field(3, ge=0, le=100, description="attempts after the first, on failure")
    backoff_s: float = Field(
        0.5, ge=0, le=3600, description="wait before the first retry, doubled per retry"
    )
    queue_size: int = Field(
        256, ge=1, le=1_000_000, description="matched events waiting to be sent; beyond: dropped"
    )

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown event kind {value!r}; one of {', '.join(KINDS)}")
        return value

    @field_validator("zmq")
    @classmethod
    def _zmq_endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _check_zmq_peer(value)

    @field_validator("http")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "expected a list of strings, the program and its arguments (run without a "
                f'shell), e.g. ["python3", "notify.py"]; got {value!r}'
            )
        return value

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or not value[0]):
            raise ValueError("needs the program to run as its first element")
        return value

    @model_validator(mode="after")
    def _filters_the_kind_can_pass(self) -> ActionConfig:
        """A filter on a field the kind's events never carry would never fire (SPEC 4)."""
        carried = {
            "pathway": {DEATH},
            "min_confidence": {DEATH, EARLY_NECROPTOSIS, CELL_TYPE},
            "well": {DEATH, EARLY_NECROPTOSIS, CELL_TYPE, CONTACT_START, CONTACT_END},
        }
        for name, kinds in carried.items():
            if getattr(self, name) is not None and self.kind not in kinds:
                raise ValueError(
                    f"{name}: {self.kind} events have no {name.removeprefix('min_')}, so this "
                    f"action would never fire (it filters {', '.join(sorted(kinds))} events)"
                )
        return self

    @model_validator(mode="after")
    def _one_target(self) -> ActionConfig:
        targets = [name for name in ("zmq", "http", "command") if getattr(self, name) is not None]
        if len(targets) != 1:
            got = ", ".join(targets) if targets else "none"
            raise ValueError(f"needs exactly one target of zmq, http, command (got {got})")
        return self

    @property
    def target(self) -> Literal["zmq", "http", "command"]:
        """Which of the three targets is set."""
        if self.zmq is not None:
            return "zmq"
        return "http" if self.http is not None else "command"


class Config(_Section):
    state_dir: Path = Field(
        Path("state"), strict=False, description="journal, quarantine, engine cache"
    )
    source: SourceConfig = Field(default_factory=SourceConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    nanowell: NanowellConfig = Field(default_factory=NanowellConfig)
    patches: PatchesConfig = Field(default_factory=PatchesConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    actions: tuple[ActionConfig, ...] = Field(
        (), strict=False, description="acquisition triggers, one [[actions]] table each"
    )

    @field_validator("actions", mode="before")
    @classmethod
    def _actions_are_tables(cls, value: Any) -> Any:
        if isinstance(value, dict):
            raise ValueError("write each action as an [[actions]] table (two brackets)")
        return value

    @field_validator("state_dir", mode="before")
    @classmethod
    def _state_dir_named(cls, value: Any) -> Any:
        return _not_empty(value, "needs a folder name (empty would be the config's own folder)")

    @model_validator(mode="after")
    def _source_complete(self) -> Config:
        if self.source.kind == "watch" and self.source.path is None:
            raise ValueError("source.path is required when source.kind = 'watch'")
        return self

    @model_validator(mode="after")
    def _backend_runs_the_mode(self) -> Config:
        nanowell_unet = self.analysis.mode == "nanowell" and self.nanowell.segmenter == "unet"
        if nanowell_unet and self.engine.backend == "torch":
            raise ValueError(
                "engine.backend 'torch' runs patch classifiers only; nanowell mode's U-Net and "
                "contact net run on ONNX: 'auto', 'onnxruntime', 'tensorrt' or 'triton'"
            )
        return self

    @property
    def engine_cache_dir(self) -> Path:
        """Where the engine keeps what it builds (TensorRT engines and timing caches)."""
        return self.state_dir / "engine"

    def to_toml(self) -> str:
        """The resolved config, every default filled in, as TOML."""
        return _to_toml(self.model_dump(mode="json"))


def split_address(address: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"`` -> ``("127.0.0.1", 9108)``; ``"[::1]:9108"`` -> ``("::1", 9108)``."""
    host, _, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _not_empty(value: Any, why: str) -> Any:
    """``value``, unless it is the empty string: a path key that ``why`` says needs one."""
    if value == "":
        raise ValueError(why)
    return value


def _check_address(value: str) -> str:
    if value == "":
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, e.g. 127.0.0.1:9108, got {value!r}")
    return value


_ZMQ_ENDPOINT = re.compile(
    r"(tcp://(\*|[^:/\s]+|\[[0-9a-fA-F:.]+\]):(\*|\d{1,5})|ipc://\S+|inproc://\S+)"
)


def _check_zmq_endpoint(value: str) -> str:
    if not _ZMQ_ENDPOINT.fullmatch(value):
        raise ValueError(
            f"expected a ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/x; got {value!r}"
        )
    return value


def _check_zmq_peer(value: str) -> str:
    """An endpoint an action can connect to: a concrete host and port, or an ipc path
    (``*`` only binds, and ``inproc://`` never reaches another context)."""
    _check_zmq_endpoint(value)
    if value.startswith("inproc://"):
        raise ValueError(f"an action cannot reach an inproc:// endpoint, got {value!r}")
    if value.startswith("tcp://"):
        host, _, port = value.removeprefix("tcp://").rpartition(":")
        if host == "*" or port == "*" or not 1 <= int(port) <= 65535:
            raise ValueError(
                f"expected a host and a port from 1 to 65535 to connect to, e.g. "
                f"tcp://127.0.0.1:5570; got {value!r}"
            )
    return value


def _check_http_url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.username is not None or parts.password is not None:  # not echoed: a password
        raise ValueError("user:password@ in a URL is not sent (and would be logged); leave it out")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {value!r}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, got {value!r}")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"spaces and control characters must be encoded (%20), got {value!r}")
    return value


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read, validate and resolve a config file; raise ``ConfigError`` naming the key.

    ``overrides`` (nested dicts, e.g. ``{"source": {"path": "/data"}}``) are
    applied on top of the file, as the command line does for ``replay``.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    return config_from_dict(raw, base_dir=path.resolve().parent, overrides=overrides)


def config_from_dict(
    raw: dict[str, Any], *, base_dir: Path, overrides: dict[str, Any] | None = None
) -> Config:
    merged = _deep_merge(raw, overrides or {})
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc) from None
    return _resolve_paths(config, base_dir)


def _resolve_paths(config: Config, base_dir: Path) -> Config:
    def resolve(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (base_dir / p).resolve()

    source = config.source
    if source.path is not None:
        source = source.model_copy(update={"path": resolve(source.path)})
    sinks = config.sinks.model_copy(
        update={
            "events": resolve(config.sinks.events),
            "tracks": resolve(config.sinks.tracks) if config.sinks.tracks else None,
        }
    )
    models = config.nanowell
    nanowell = models.model_copy(
        update={
            name: resolve(path)
            for name in NANOWELL_MODEL_KEYS
            if (path := getattr(models, name)) is not None
        }
    )
    patches = config.patches
    if patches.model is not None:
        patches = patches.model_copy(update={"model": resolve(patches.model)})
    engine = config.engine
    if engine.model:
        engine = engine.model_copy(update={"model": str(resolve(Path(engine.model)))})
    actions = tuple(
        action.model_copy(update={"command": _command_resolved(action.command, resolve)})
        if action.command
        else action
        for action in config.actions
    )
    return config.model_copy(
        update={
            "state_dir": resolve(config.state_dir),
            "source": source,
            "sinks": sinks,
            "nanowell": nanowell,
            "patches": patches,
            "engine": engine,
            "actions": actions,
        }
    )


def _command_resolved(command: tuple[str, ...], resolve: Callable[[Path], Path]) -> tuple[str, ...]:
    """A command action's program given as a relative path (``./hook.sh``,
    ``hooks/notify``) is the config folder's, as every path in the config; a bare name
    (``python3``) is still looked up on PATH."""
    program, *arguments = command
    if "/" not in program or Path(program).is_absolute():
        return command
    return (str(resolve(Path(program))), *arguments)


def _config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return ConfigError(
            key, "unknown key (check the spelling; `livecell check-config` lists them)"
        )
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("missing", "value_error") and not isinstance(first.get("input"), dict):
        message += f" (got {first['input']!r})"
    for named in ("source.path", "engine.backend"):  # the cross-section checks name a key
        if not key and message.startswith(named):
            key, message = named, message.removeprefix(f"{named} ")
    extra = len(exc.errors()) - 1
    if extra:
        message += f"; and {extra} more problem{'s' if extra > 1 else ''}"
    return ConfigError(key, message)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _to_toml(data: dict[str, Any]) -> str:
    # TOML has no null: a key that is None (unset, e.g. source.path for zmq) is left out.
    # A non-empty list of tables (``actions``) is an array of tables: ``[[name]]`` each.
    arrays = {
        k: v
        for k, v in data.items()
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    }
    scalars = {
        k: v
        for k, v in data.items()
        if not isinstance(v, dict) and v is not None and k not in arrays
    }
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for name, table in tables.items():
        lines += ["", f"[{name}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    for name, items in arrays.items():
        for item in items:
            lines += ["", f"[[{name}]]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    chars = []
    for char in text:
        if char in '"\\':
            chars.append("\\" + char)
        elif (char < " " and char != "\t") or char == "\x7f":
            chars.append(f"\\u{ord(char):04x}")
        else:
            chars.append(char)
    return '"' + "".join(chars) + '"'
