#!/usr/bin/env python
"""Probe a nanowell death model the way the daemon uses it, on held-out simulated acquisitions.

For each acquisition (``livecell simulate OUT --kind nanowell ...``; use seeds the model was
never trained on) every ground-truth track is read as the training data is
(:func:`livecell.training.sequences.load_track_sequences`: crops of the frames centred on
the cell, the TRA mask as the mask channel, the motion descriptors of the whole track). The
model then sees, at every frame ``t`` of the track, the window of the ``window`` frames
ending at ``t`` (padded at the front by repeating the track's first frame), as
``livecell/analysis/nanowell.py`` feeds it, and a :class:`~livecell.analysis.fates.DeathWatch`
per track takes the per-frame and per-window probabilities, with the
:class:`~livecell.config.NanowellConfig` defaults (``death_min_track_frames`` included)
and with a few alternative ``threshold,confirm_frames[,onset_threshold[,context]]``
settings (``context``: ``death_onset_context_frames``, -1 the deciding window alone).

The per-frame encoder of the CNN-LSTM is run once per frame and the LSTM once per window
(the same arithmetic as ``model(crops, motion)``, checked on a few windows), from
``model.pt`` (``model.onnx`` matches it to ~1e-6, see the card's ``onnx`` section).

Printed per setting: tracks, true deaths (a ``deaths.csv`` onset inside the track),
detected deaths, false deaths (tracks that never die but are called dead, as % of those),
the onset error ``called onset - true onset`` in frames (fraction within 2 frames,
quantiles) and the detection delay (frame of the call - true onset). Also the raw
per-frame numbers: fraction of frames of never-dying tracks with death probability
``1 - p(live)`` above 0.8 (effectors and targets), and of frames after onset; and, at
the defaults, the onset errors per true pathway and cell type: early (more than 2
frames before the truth), within 2 frames, late, missed.

Example::

    python scripts/death_probe.py nano111 nano112 --model livecell/engine/bundled/nanowell_death
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from livecell.analysis.fates import DeathWatch
from livecell.config import NanowellConfig
from livecell.engine.bundled import bundled_model_dir
from livecell.engine.models.sequence import SequenceClassifier
from livecell.engine.sequence_runtime import SequenceInput
from livecell.training.sequence_train import card_sequence_normalisation, load_sequence_model
from livecell.training.sequences import load_track_sequences

FloatArray = npt.NDArray[np.float32]
DEFAULT_ALTERNATIVES = ("0.8,3,0.8,-1", "0.8,3,0.5,5", "0.9,3,0.9,-1", "0.9,3,0.6,4", "0.8,4")


@dataclass(frozen=True, slots=True)
class Setting:
    """One DeathWatch setting (``onset_context_frames`` None: the deciding window alone)."""

    threshold: float
    confirm: int
    onset_threshold: float
    onset_context_frames: int | None

    @classmethod
    def parse(cls, text: str, defaults: Setting) -> Setting:
        parts = text.split(",")
        if not 2 <= len(parts) <= 4:
            raise ValueError(f"expected THRESHOLD,CONFIRM[,ONSET[,CONTEXT]], got {text!r}")
        context = int(parts[3]) if len(parts) > 3 else defaults.onset_context_frames
        return cls(
            float(parts[0]),
            int(parts[1]),
            float(parts[2]) if len(parts) > 2 else defaults.onset_threshold,
            None if context is not None and context < 0 else context,
        )

    def label(self) -> str:
        context = "-" if self.onset_context_frames is None else str(self.onset_context_frames)
        return (
            f"{self.threshold:>9.2f} {self.confirm:>7d} {self.onset_threshold:>5.2f} {context:>7}"
        )


@dataclass(frozen=True, slots=True)
class TrackRun:
    """One track's model output at every frame: the window ending there."""

    name: str
    cell_type: str
    pathway: str  # live when the track never dies
    onset_t: int  # -1: never dies within the track
    ts: npt.NDArray[np.int64]  # [L] frames of the track
    window_ts: list[npt.NDArray[np.int64]]  # per frame: the window's frame indices
    frame_probs: list[FloatArray]  # per frame: [W, K]
    window_probs: FloatArray  # [L, K]


def _track_lengths(acquisition: Path) -> int:
    counts: Counter[tuple[str, str]] = Counter()
    with (acquisition / "ground_truth" / "tracks.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            counts[(row["position"], row["track"])] += 1
    return max(counts.values())


def _windows(n: int, window: int) -> npt.NDArray[np.int64]:
    """``[n, window]`` indices into a track of ``n`` frames: the window ending at each frame,
    padded at the front with index 0 (as the daemon's ``TrackState.window_arrays``)."""
    ends = np.arange(n)[:, None]
    idx = ends - (window - 1) + np.arange(window)[None, :]
    out: npt.NDArray[np.int64] = np.maximum(idx, 0).astype(np.int64)
    return out


def _lstm_windows(
    model: SequenceClassifier, features: torch.Tensor, motion: torch.Tensor, window: int
) -> tuple[FloatArray, FloatArray]:
    """Softmax per-frame ``[L, W, K]`` and per-window ``[L, K]`` of the windows of one track."""
    idx = torch.from_numpy(_windows(features.shape[0], window))
    x = torch.cat([features[idx], motion[idx]], dim=-1)  # [L, W, F + 5]
    hidden, _ = model.lstm(x)
    frame = torch.softmax(model.frame_head(hidden), dim=-1)
    seq = torch.softmax(model.sequence_head(hidden[:, -1]), dim=-1)
    return frame.numpy(), seq.numpy()


def run_model(model_dir: Path, acquisition: Path, *, check: bool = True) -> list[TrackRun]:
    """The model over every track of ``acquisition``, window by window."""
    model, card = load_sequence_model(model_dir)
    spec = card["input"]["crops"]
    window = int(spec["window"])
    norm = card_sequence_normalisation(card)
    longest = _track_lengths(acquisition)
    chip = SequenceInput.from_card(card).motion_frame == "chip"
    data = load_track_sequences(
        acquisition, crop_px=int(spec["height"]), window=longest, stride=longest, chip_motion=chip
    )
    crops_all, motion_all = norm.apply(data.crops, data.motion)
    classes = data.cell_type_classes
    runs: list[TrackRun] = []
    checked = False
    with torch.inference_mode():
        for i in range(len(data)):
            ft = data.frame_t[i]
            pad = int(np.sum(ft == ft[0])) - 1
            ts = ft[pad:]
            crops = torch.from_numpy(np.ascontiguousarray(crops_all[i, pad:]))
            motion = torch.from_numpy(np.ascontiguousarray(motion_all[i, pad:]))
            feats = torch.cat(
                [
                    model.encoder.forward_features(crops[s : s + 256])
                    for s in range(0, crops.shape[0], 256)
                ]
            )
            frame_probs, window_probs = _lstm_windows(model, feats, motion, window)
            if check and not checked and ts.size > window:
                idx = torch.from_numpy(_windows(ts.size, window)[-3:])
                f_ref, s_ref = model(crops[idx], motion[idx])
                diff = max(
                    float(np.abs(torch.softmax(f_ref, -1).numpy() - frame_probs[-3:]).max()),
                    float(np.abs(torch.softmax(s_ref, -1).numpy() - window_probs[-3:]).max()),
                )
                if diff > 1e-4:
                    raise RuntimeError(f"windowed LSTM differs from the model by {diff:.2e}")
                checked = True
            dead = np.flatnonzero(data.frame_death[i, pad:] > 0.5)
            wins = _windows(ts.size, window)
            runs.append(
                TrackRun(
                    name=data.tracks[i],
                    cell_type=classes[int(data.cell_type[i])],
                    pathway=data.pathway_classes[int(data.track_pathway[i])],
                    onset_t=int(ts[dead[0]]) if dead.size else -1,
                    ts=ts,
                    window_ts=[ts[w] for w in wins],
                    frame_probs=list(frame_probs),
                    window_probs=window_probs,
                )
            )
    return runs


@dataclass(frozen=True, slots=True)
class Score:
    tracks: int
    deaths: int
    detected: int
    live_tracks: int
    false_deaths: int
    onset_errors: list[int]
    delays: list[int]
    missed: list[tuple[int, int]]  # (true onset, last frame of the track) of missed deaths


def score(runs: list[TrackRun], classes: tuple[str, ...], setting: Setting) -> Score:
    config = NanowellConfig()
    onset_errors: list[int] = []
    delays: list[int] = []
    missed: list[tuple[int, int]] = []
    detected = false = deaths = live = 0
    for run in runs:
        watch = DeathWatch(
            classes,
            threshold=setting.threshold,
            confirm_frames=setting.confirm,
            early_threshold=config.early_necroptosis_threshold,
            min_track_frames=config.death_min_track_frames,
            onset_threshold=setting.onset_threshold,
            onset_context_frames=setting.onset_context_frames,
            apoptosis_hold_frames=config.death_apoptosis_hold_frames,
        )
        called_at = -1
        for k, t in enumerate(run.ts):
            for decision in watch.update(run.window_ts[k], run.frame_probs[k], run.window_probs[k]):
                if not decision.early:
                    called_at = int(t)
        if run.onset_t >= 0:
            deaths += 1
            if watch.death is not None:
                detected += 1
                onset_errors.append(watch.death.onset_t - run.onset_t)
                delays.append(called_at - run.onset_t)
            else:
                missed.append((run.onset_t, int(run.ts[-1])))
        else:
            live += 1
            false += watch.death is not None
    return Score(len(runs), deaths, detected, live, false, onset_errors, delays, missed)


def _q(values: list[int]) -> str:
    if not values:
        return "-"
    q = np.percentile(values, [10, 50, 90])
    return f"{q[0]:+.0f}/{q[1]:+.0f}/{q[2]:+.0f}"


def print_frame_stats(runs: list[TrackRun], cut: float = 0.8) -> None:
    by_type: dict[str, list[float]] = {}
    after: list[float] = []
    for run in runs:
        p_dead = 1.0 - np.array([f[-1, 0] for f in run.frame_probs])
        if run.onset_t < 0:
            by_type.setdefault(run.cell_type, []).extend(p_dead.tolist())
        else:
            after.extend(p_dead[run.ts >= run.onset_t].tolist())
    parts = [
        f"{name} never dying: {np.mean(np.array(v) > cut):.1%} of {len(v)} frames"
        for name, v in sorted(by_type.items())
    ]
    parts.append(f"after onset: {np.mean(np.array(after) > cut):.1%} of {len(after)} frames")
    print(f"per-frame death probability > {cut}: " + "; ".join(parts))


def print_breakdown(runs: list[TrackRun], classes: tuple[str, ...], setting: Setting) -> None:
    """Onset errors at ``setting`` per true pathway and cell type."""
    print("at the defaults, per true pathway and cell type (onset error = called - true):")
    print(
        f"  {'pathway':<12} {'cell type':<9} {'deaths':>6} {'early':>5} {'within 2':>8} "
        f"{'late':>4} {'missed':>6}  err p10/50/90  delay p50"
    )
    for pathway in classes[1:]:
        for cell_type in sorted({r.cell_type for r in runs}):
            subset = [
                r
                for r in runs
                if r.pathway == pathway and r.cell_type == cell_type and r.onset_t >= 0
            ]
            if not subset:
                continue
            s = score(subset, classes, setting)
            err = np.array(s.onset_errors, dtype=np.int64)
            delay = f"{np.median(s.delays):+.0f}" if s.delays else "-"
            print(
                f"  {pathway:<12} {cell_type:<9} {s.deaths:>6d} {int(np.sum(err < -2)):>5d} "
                f"{int(np.sum(np.abs(err) <= 2)):>8d} {int(np.sum(err > 2)):>4d} "
                f"{s.deaths - s.detected:>6d}  {_q(s.onset_errors):>13}  {delay:>9}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Scores a DeathWatch (livecell/analysis/fates.py) on ground-truth tracks.",
    )
    parser.add_argument("acquisitions", nargs="+", type=Path, help="simulated nanowell folders")
    parser.add_argument(
        "--model", type=Path, default=None, help="death model folder (default: the bundled one)"
    )
    parser.add_argument(
        "--alt",
        action="append",
        default=None,
        metavar="THRESHOLD,CONFIRM[,ONSET[,CONTEXT]]",
        help=f"alternative DeathWatch settings (default: {' '.join(DEFAULT_ALTERNATIVES)})",
    )
    args = parser.parse_args(argv)
    model_dir = args.model or bundled_model_dir("nanowell_death")
    config = NanowellConfig()
    defaults = Setting(
        config.death_threshold,
        config.death_confirm_frames,
        config.death_onset_threshold,
        config.death_onset_context_frames if config.death_onset_context_frames >= 0 else None,
    )
    settings = [defaults] + [Setting.parse(a, defaults) for a in args.alt or DEFAULT_ALTERNATIVES]
    _, card = load_sequence_model(model_dir)
    classes = tuple(card["classes"])
    runs: list[TrackRun] = []
    for acquisition in args.acquisitions:
        runs.extend(run_model(model_dir, acquisition))
    print(
        f"model {model_dir} (window {card['input']['crops']['window']}), "
        f"acquisitions {', '.join(a.name for a in args.acquisitions)}"
    )
    print_frame_stats(runs)
    header = (
        f"{'threshold':>9} {'confirm':>7} {'onset':>5} {'context':>7} {'tracks':>6} "
        f"{'deaths':>6} {'detected':>8} "
        f"{'false':>11} {'onset<=2':>8} {'err p10/50/90':>13} {'delay p10/50/90':>15}"
    )
    print(header)
    for setting in settings:
        s = score(runs, classes, setting)
        within = np.mean(np.abs(np.array(s.onset_errors)) <= 2) if s.onset_errors else 0.0
        tag = " (defaults)" if setting is defaults else ""
        print(
            f"{setting.label()} {s.tracks:>6d} {s.deaths:>6d} "
            f"{s.detected:>8d} {s.false_deaths:>4d} "
            f"({s.false_deaths / max(s.live_tracks, 1):>4.1%})"
            f" {within * s.detected / max(s.deaths, 1):>8.1%} {_q(s.onset_errors):>13} "
            f"{_q(s.delays):>15}{tag}"
        )
    print_breakdown(runs, classes, defaults)
    missed = score(runs, classes, defaults).missed
    print(
        "missed deaths at the defaults (true onset, last frame of the track): "
        + (", ".join(f"({a}, {b})" for a, b in sorted(missed)) or "none")
    )
    print(
        "onset<=2: true deaths detected with |called onset - true onset| <= 2 frames, "
        "as % of all true deaths; false: % of never-dying tracks called dead"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
