#!/usr/bin/env python
"""Retrain the nanowell death model's LSTM on daemon-style windows (encoder frozen).

See :mod:`livecell.training.sequence_head`. The per-frame encoder features of each
acquisition are cached in ``--cache`` (one ``.npz`` per acquisition folder name), so a
second run with other settings skips the crops. Example::

    OMP_NUM_THREADS=1 python scripts/train_death_head.py nano101 ... nano108 \\
        --val nano109 nano110 --out nanowell_death --window 24 --epochs 12
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from livecell.engine.bundled import bundled_model_dir
from livecell.training.sequence_head import (
    TrackSeries,
    chip_motion_series,
    track_series,
    train_death_head,
)
from livecell.training.sequence_train import load_sequence_model


def _cached(acquisition: Path, base: Path, cache: Path | None) -> list[TrackSeries]:
    if cache is None:
        return track_series(acquisition, base)
    path = cache / f"{acquisition.resolve().name}.npz"
    if not path.is_file():
        tracks = track_series(acquisition, base)
        cache.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for i, t in enumerate(tracks):
            arrays[f"{i}_features"] = t.features
            arrays[f"{i}_motion"] = t.motion
            arrays[f"{i}_ts"] = t.ts
            arrays[f"{i}_dead"] = t.dead
            arrays[f"{i}_meta"] = np.array([t.name, str(t.pathway)])
        np.savez(path, **arrays)  # type: ignore[arg-type]
        return tracks
    with np.load(path) as z:
        n = sum(1 for key in z.files if key.endswith("_meta"))
        return [
            TrackSeries(
                name=str(z[f"{i}_meta"][0]),
                features=z[f"{i}_features"],
                motion=z[f"{i}_motion"],
                ts=z[f"{i}_ts"],
                dead=z[f"{i}_dead"],
                pathway=int(z[f"{i}_meta"][1]),
            )
            for i in range(n)
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("acquisitions", nargs="+", type=Path, help="training acquisitions")
    parser.add_argument("--val", nargs="+", type=Path, required=True, help="validation ones")
    parser.add_argument(
        "--test", nargs="*", type=Path, default=[], help="held-out ones, only measured"
    )
    parser.add_argument("--base", type=Path, default=None, help="model whose encoder is kept")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None, help="folder for feature caches")
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--unidirectional", action="store_true")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--frame-weight", type=float, default=1.0)
    parser.add_argument("--dropout", type=float, default=0.0, help="on the LSTM input")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features-only", action="store_true", help="fill the cache, stop")
    parser.add_argument(
        "--chip-motion",
        action="store_true",
        help="motion on the chip (needs ground_truth/stage.csv; docs/nanowell.md)",
    )
    args = parser.parse_args(argv)
    base = args.base or bundled_model_dir("nanowell_death")
    _, base_card = load_sequence_model(base)

    def series(acquisition: Path) -> list[TrackSeries]:
        tracks = _cached(acquisition, base, args.cache)
        return chip_motion_series(tracks, acquisition, base_card) if args.chip_motion else tracks

    train = [t for a in args.acquisitions for t in series(a)]
    val = [t for a in args.val for t in series(a)]
    test = [t for a in args.test for t in series(a)]
    print(f"{len(train)} training tracks, {len(val)} validation tracks", flush=True)
    if args.features_only:
        return 0
    card = train_death_head(
        train,
        val,
        base=base,
        out=args.out,
        window=args.window,
        hidden_size=args.hidden,
        bidirectional=not args.unidirectional,
        epochs=args.epochs,
        lr=args.lr,
        frame_weight=args.frame_weight,
        input_dropout=args.dropout,
        seed=args.seed,
        test=test,
        argv=["python", "scripts/train_death_head.py", *(argv or sys.argv[1:])],
        sources=[str(a) for a in [*args.acquisitions, *args.val, *args.test]],
        chip_motion=args.chip_motion,
    )
    for name in ("val_death_watch", "test_death_watch"):
        if name in card["metrics"]:
            print(name, card["metrics"][name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
