"""``livecell train``: train a patch classifier, or a nanowell model (``--task``).

``add_arguments`` + ``run`` plug into the ``livecell`` command's subparsers (importing
this module is light: torch loads in ``run``). Exit status: 0 trained; 1 a needed
package is missing (the message names the extra) or the network could not be built;
2 unusable data, arguments or checkpoint (one line naming it, no traceback).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livecell.argtypes import at_least_one, non_negative, non_negative_float, positive_float
from livecell.simulation.scene import DEFAULT_PATCH_SIZE_PX

if TYPE_CHECKING:
    from livecell.training.datasets import AugmentParams

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Train a patch classifier (--task patches, the default): DATA is a folder-per-class tree "
    "(ROOT/<class>/<images>) or a simulator output folder (OUT with frames/ and "
    "ground_truth/patches.csv), detected automatically; several DATA of one kind are pooled. "
    "Or train the nanowell CNN-LSTM on per-track sequences (--task cell_type or death): DATA "
    "are nanowell simulator outputs (frames/, ground_truth/tracks.csv, deaths.csv, TRA/). "
    "Or the nanowell segmentation U-Net (--task segmentation) or contact net (--task contact) "
    "on nanowell simulator outputs, with --test held out. "
    "The split (70/15/15, or 85/15 with --test) is grouped by source image or by acquisition "
    "and position, never by patch or window. Writes model.pt and model_card.json into "
    "--out, with confusion_test.png for the classifiers (patches, cell_type, death) and "
    "model.onnx for the nanowell tasks (for patches: --onnx, or livecell export)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", type=Path, nargs="+", metavar="DATA", help="folder-per-class root or simulator OUT"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--task",
        choices=("patches", "cell_type", "death", "segmentation", "contact"),
        default="patches",
        help="what to learn (default: patches)",
    )
    parser.add_argument(
        "--test",
        type=Path,
        nargs="+",
        default=None,
        metavar="DATA",
        help="held-out data for the test split (e.g. simulations with seeds never trained on); "
        "DATA is then split 85/15 into train and val",
    )
    parser.add_argument("--arch", default="compact", help="network (default: compact)")
    parser.add_argument(
        "--patch-size",
        type=at_least_one,
        default=DEFAULT_PATCH_SIZE_PX,
        metavar="PX",
        help=f"patch side in pixels (default: {DEFAULT_PATCH_SIZE_PX})",
    )
    parser.add_argument(
        "--resize",
        action="store_true",
        help="folder trees: resize each image to one patch instead of tiling it",
    )
    parser.add_argument(
        "--include-empty",
        action="store_true",
        help="simulated data: keep empty patches as a class (default: left out)",
    )
    parser.add_argument("--epochs", type=at_least_one, default=10, help="most epochs (default: 10)")
    parser.add_argument("--batch-size", type=at_least_one, default=64, help="(default: 64)")
    parser.add_argument(
        "--lr", type=positive_float, default=1e-3, help="AdamW learning rate (default: 1e-3)"
    )
    parser.add_argument(
        "--seed", type=non_negative, default=0, help="split, init and augmentation seed"
    )
    parser.add_argument(
        "--patience",
        type=at_least_one,
        default=3,
        help="stop after this many epochs without a better validation balanced accuracy "
        "(default: 3)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    parser.add_argument(
        "--max-patches",
        type=at_least_one,
        default=None,
        metavar="N",
        help="use at most N patches, drawn at random (for quick runs)",
    )
    parser.add_argument(
        "--workers", type=non_negative, default=0, help="data loader processes (default: 0)"
    )
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument(
        "--no-intensity-jitter",
        action="store_true",
        help="keep flips and rotations but not the gain and offset jitter: for calibrated "
        "images (refractive index) where the absolute level is the signal",
    )
    parser.add_argument("--onnx", action="store_true", help="also export DIR/model.onnx")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sequences = parser.add_argument_group("sequence tasks (cell_type, death)")
    sequences.add_argument(
        "--crop-px", type=at_least_one, default=64, help="crop side (default: 64)"
    )
    sequences.add_argument(
        "--window", type=at_least_one, default=8, help="frames per window (default: 8)"
    )
    sequences.add_argument(
        "--stride", type=at_least_one, default=4, help="frames between window starts (default: 4)"
    )
    sequences.add_argument(
        "--monotone-weight",
        type=non_negative_float,
        default=0.1,
        help="death: weight of the penalty on downward steps of p(dead) (default: 0.1)",
    )
    contact = parser.add_argument_group("contact task (nanowell contact net)")
    contact.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep each acquisition's examples (the U-Net pass over its frames) in DIR and "
        "reuse them while the acquisition and the U-Net are unchanged",
    )
    segmentation = parser.add_argument_group("segmentation task (nanowell U-Net)")
    segmentation.add_argument(
        "--steps", type=at_least_one, default=2500, help="optimiser steps (default: 2500)"
    )
    segmentation.add_argument(
        "--window-px", type=at_least_one, default=96, help="training window side (default: 96)"
    )
    segmentation.add_argument(
        "--frame-stride",
        type=at_least_one,
        default=4,
        help="use every Nth frame of each acquisition (default: 4)",
    )


def run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Train as ``args`` say; ``argv`` (default: ``livecell`` + our arguments) goes in the card."""
    from livecell.engine._extras import MissingExtra, require

    try:
        require("torch", extra="train", purpose="livecell train")
        require("sklearn", extra="eval", purpose="livecell train's metrics")
        require("matplotlib", extra="eval", purpose="livecell train's confusion matrix")
    except MissingExtra as exc:
        print(f"livecell train: {exc}", file=sys.stderr)
        return EXIT_FAILURE

    argv = list(["livecell", *sys.argv[1:]] if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
    if args.cache is not None and args.task != "contact":
        print("livecell train: --cache only applies to --task contact", file=sys.stderr)
        return EXIT_USAGE
    if args.task == "segmentation":
        return _run_segmentation(args, argv)
    if args.task == "contact":
        return _run_contact(args, argv)
    if args.task != "patches":
        return _run_sequences(args, argv)
    return _run_patches(args, argv)


def _run_patches(args: argparse.Namespace, argv: list[str]) -> int:
    from livecell.engine._extras import MissingExtra
    from livecell.training import train as training
    from livecell.training.datasets import DataError, load_data

    try:
        config = training.TrainConfig(
            arch=args.arch,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            patience=args.patience,
            workers=args.workers,
            fractions=(0.7, 0.15, 0.15) if args.test is None else (0.85, 0.15, 0.0),
            augment=_augmentation(args),
        )
        load = functools.partial(
            load_data,
            patch_size=args.patch_size,
            mode="resize" if args.resize else "tile",
            include_empty=args.include_empty,
            max_patches=args.max_patches,
            seed=args.seed,
        )
        data = load(args.data)
        if len(set(data.labels.tolist())) < 2:
            raise DataError(
                f"holds one class only ({data.classes[int(data.labels[0])]!r}): a classifier "
                "learns nothing from it; give patches of at least two classes",
                path=" ".join(str(p) for p in args.data),
            )
        test_data = None if args.test is None else load(args.test)
        result = training.train(
            data,
            config,
            args.out,
            resume=args.resume,
            model_factory=training.registry_model,
            onnx=args.onnx,
            argv=argv,
            provenance={
                "patch_mode": "resize" if args.resize else "tile",
                "include_empty": args.include_empty,
                "max_patches": args.max_patches,
            },
            progress=not args.quiet,
            test_data=test_data,
        )
    except MissingExtra as exc:
        print(f"livecell train: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (DataError, ValueError, OSError) as exc:
        print(f"livecell train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ImportError, KeyError) as exc:
        print(f"livecell train: cannot build the network {args.arch!r}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    _report(result.card["metrics"]["test"], "patches")
    print(f"wrote {result.out_dir}")
    return EXIT_OK


def _augmentation(args: argparse.Namespace) -> AugmentParams | None:
    from livecell.training.datasets import AugmentParams

    if args.no_augment:
        return None
    if args.no_intensity_jitter:
        return AugmentParams(gain_sd=0.0, offset_sd=0.0)
    return AugmentParams()


_PATCH_ONLY = {
    "arch": "compact",
    "resume": False,
    "resize": False,
    "include_empty": False,
    "max_patches": None,
    "workers": 0,
    "no_augment": False,
    "no_intensity_jitter": False,
}
"""Options that only ``--task patches`` reads, with their defaults."""


def _patch_options_given(args: argparse.Namespace) -> str:
    """The ``--task patches`` options set to other than their defaults, as typed ("" if none)."""
    return ", ".join(
        "--" + name.replace("_", "-")
        for name, default in _PATCH_ONLY.items()
        if getattr(args, name) != default
    )


def _run_sequences(args: argparse.Namespace, argv: list[str]) -> int:
    from livecell.training.datasets import DataError
    from livecell.training.sequence_train import train_sequence_model
    from livecell.training.sequences import load_sequences

    if names := _patch_options_given(args):
        print(f"livecell train: {names} only apply to --task patches", file=sys.stderr)
        return EXIT_USAGE
    try:
        load = functools.partial(
            load_sequences,
            crop_px=args.crop_px,
            window=args.window,
            stride=args.stride,
            progress=not args.quiet,
        )
        data = load(args.data)
        result = train_sequence_model(
            data,
            task=args.task,
            out=args.out,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            patience=args.patience,
            monotone_weight=args.monotone_weight,
            fractions=(0.7, 0.15, 0.15) if args.test is None else (0.85, 0.15, 0.0),
            argv=argv,
            progress=not args.quiet,
            test_data=None if args.test is None else load(args.test),
        )
    except (DataError, ValueError, OSError) as exc:
        print(f"livecell train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _report(result.card["metrics"]["test"], "windows")
    print(f"ONNX vs torch: max abs difference {result.onnx_parity_max_abs_diff:.1e}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _not_held_out(data: Sequence[Path], test: Sequence[Path]) -> str | None:
    """Why DATA and --test are not apart, in words (the same acquisition named twice, or
    in both, would score the model on what it trained on); None if they are."""
    seen: set[Path] = set()
    for folder in data:
        if folder.resolve() in seen:
            return f"DATA names {folder} twice: each acquisition once"
        seen.add(folder.resolve())
    shared = [str(folder) for folder in test if folder.resolve() in seen]
    if shared:
        return f"--test {', '.join(shared)} is also in DATA: held out means never trained on"
    return None


def _run_segmentation(args: argparse.Namespace, argv: list[str]) -> int:
    from tqdm import tqdm

    from livecell.training.segmentation_data import WellCrop, iter_well_crops
    from livecell.training.segmentation_train import (
        SegmentationTrainConfig,
        train_segmentation,
    )

    if names := _patch_options_given(args):
        print(f"livecell train: {names} do not apply to --task segmentation", file=sys.stderr)
        return EXIT_USAGE
    if args.test is None:
        print("livecell train: --task segmentation needs --test DATA (held out)", file=sys.stderr)
        return EXIT_USAGE
    if problem := _not_held_out(args.data, args.test):
        print(f"livecell train: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = SegmentationTrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            window_px=args.window_px,
            lr=args.lr,
            seed=args.seed,
        )

        def load(folders: Sequence[Path]) -> list[WellCrop]:
            crops: list[WellCrop] = []
            bar = tqdm(folders, desc="reading wells", unit="acquisition", disable=args.quiet)
            for folder in bar:
                crops.extend(iter_well_crops(folder, every=args.frame_stride))
            return crops

        train_crops, test_crops = load(args.data), load(args.test)
        result = train_segmentation(
            train_crops,
            test_crops,
            args.out,
            config,
            argv=argv,
            provenance={
                "data": [str(d) for d in args.data],
                "test": [str(d) for d in args.test],
                "frame_stride": args.frame_stride,
            },
            progress=not args.quiet,
        )
    except (ValueError, OSError, KeyError) as exc:
        print(f"livecell train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    test = result.card["metrics"]["test"]
    by_count = ", ".join(
        f"{n}: {v['mean_iou']:.3f} ({v['cells']})"
        for n, v in test["mean_iou_by_cells_per_well"].items()
    )
    print(f"held-out test: {test['cells']} cells, mean IoU {test['mean_iou']:.3f}")
    print(f"mean IoU by cells per well: {by_count}")
    print(f"ONNX vs torch: max abs difference {result.onnx_parity_max_abs_diff:.1e}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _run_contact(args: argparse.Namespace, argv: list[str]) -> int:
    from livecell.segmentation import UNetSegmenter
    from livecell.training.contact_train import (
        ContactTrainConfig,
        cached_contact_examples,
        train_contact_net,
    )

    if names := _patch_options_given(args):
        print(f"livecell train: {names} do not apply to --task contact", file=sys.stderr)
        return EXIT_USAGE
    if args.test is None or len(args.data) < 2:
        print(
            "livecell train: --task contact needs at least two DATA acquisitions (the last "
            "15 %, at least one, choose the epoch) and --test DATA (held out)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if problem := _not_held_out(args.data, args.test):
        print(f"livecell train: {problem}", file=sys.stderr)
        return EXIT_USAGE
    n_val = max(1, round(0.15 * len(args.data)))
    try:
        config = ContactTrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed
        )
        with UNetSegmenter.bundled() as segmenter:
            load = functools.partial(
                cached_contact_examples,
                segmenter=segmenter,
                half_px=config.patch_px // 2,
                cache=args.cache,
                progress=not args.quiet,
            )
            train = [load(folder) for folder in args.data[:-n_val]]
            val = [load(folder) for folder in args.data[-n_val:]]
            test = [load(folder) for folder in args.test]
        card = train_contact_net(
            train,
            val,
            test,
            args.out,
            config,
            argv=argv,
            provenance={"segmenter": "bundled nanowell_segmentation"},
            progress=not args.quiet,
        )
    except (ValueError, OSError, KeyError) as exc:
        print(f"livecell train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name in ("net", "logistic"):
        scores = card["metrics"]["test"][name]
        print(
            f"held-out test, {name}: contact precision {scores['precision']:.3f}, "
            f"recall {scores['recall']:.3f} ({scores['contacts']:.0f} contacts)"
        )
    print(f"ONNX vs torch: max abs difference {card['metrics']['onnx_parity_max_abs_diff']:.1e}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _report(test: dict[str, Any], unit: str) -> None:
    auroc = test["macro_auroc"]
    print(
        f"held-out test: {test['n']} {unit}, accuracy {test['accuracy']:.3f}, "
        f"balanced accuracy {test['balanced_accuracy']:.3f}, macro AUROC "
        + ("n/a" if auroc is None else f"{auroc:.3f}")
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livecell train", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, ["livecell", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
