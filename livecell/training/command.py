"""``livecell train``: train a patch classifier on a folder-per-class tree or simulated data.

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

from livecell.simulation.scene import DEFAULT_PATCH_SIZE_PX

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Train a patch classifier. DATA is a folder-per-class tree (ROOT/<class>/<images>) or "
    "a simulator output folder (OUT with frames/ and ground_truth/patches.csv), detected "
    "automatically; several DATA of one kind are pooled. The split (70/15/15) is grouped "
    "by source image or by acquisition and position, never by patch. Writes model.pt, "
    "model_card.json, checkpoint.pt and confusion_test.png into --out."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", type=Path, nargs="+", metavar="DATA", help="folder-per-class root or simulator OUT"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
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
        type=int,
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
    parser.add_argument("--epochs", type=int, default=10, help="most epochs (default: 10)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    parser.add_argument(
        "--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="split, init and augmentation seed")
    parser.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after this many epochs without a better validation balanced accuracy "
        "(default: 3)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    parser.add_argument(
        "--max-patches",
        type=int,
        default=None,
        metavar="N",
        help="use at most N patches, drawn at random (for quick runs)",
    )
    parser.add_argument("--workers", type=int, default=0, help="data loader processes (default: 0)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--onnx", action="store_true", help="also export DIR/model.onnx")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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

    from livecell.training import train as training
    from livecell.training.datasets import AugmentParams, DataError, load_data

    argv = list(["livecell", *sys.argv[1:]] if argv is None else argv)
    if argv:
        argv[0] = Path(argv[0]).name
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
            augment=None if args.no_augment else AugmentParams(),
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
    test = result.card["metrics"]["test"]
    auroc = test["macro_auroc"]
    print(
        f"held-out test: {test['n']} patches, accuracy {test['accuracy']:.3f}, "
        f"balanced accuracy {test['balanced_accuracy']:.3f}, macro AUROC "
        + ("n/a" if auroc is None else f"{auroc:.3f}")
    )
    print(f"wrote {result.out_dir}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="livecell train", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, ["livecell", "train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
