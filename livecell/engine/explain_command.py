"""``livecell explain``: Grad-CAM overlays for a patch or a whole frame, saved as PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Show why a model called a patch what it did: Grad-CAM heat maps over the image "
    "(a patch, or a whole frame tiled into the model's patch size), with each patch's "
    "predicted class, saved as a PNG overlay."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", type=Path, metavar="MODEL_DIR", help="the folder `livecell train --out` wrote"
    )
    parser.add_argument(
        "image",
        type=Path,
        metavar="IMAGE",
        help="a TIFF (YX, CYX or ZYX: a volume is reduced to its MIP) or PNG",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG to write (default: IMAGE's name + .gradcam.png, beside it)",
    )
    parser.add_argument(
        "--class",
        dest="class_name",
        default=None,
        help="explain this class everywhere (default: each patch's prediction)",
    )


def run(args: argparse.Namespace) -> int:
    from livecell.engine._extras import MissingExtra, require

    try:
        require("torch", extra="train", purpose="livecell explain")
    except MissingExtra as exc:
        print(f"livecell explain: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    import cv2

    from livecell.engine.explain import explain_image, overlay_png
    from livecell.training.datasets import DataError, read_frame, read_image
    from livecell.training.train import card_normalisation, load_patch_model

    if not (args.model_dir / "model_card.json").is_file():
        print(f"livecell explain: no model_card.json in {args.model_dir}", file=sys.stderr)
        return EXIT_USAGE
    if args.out is not None and args.out.is_dir():
        print(f"livecell explain: --out {args.out} is a folder; give the PNG to write",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        model, card = load_patch_model(args.model_dir)
    except ValueError as exc:
        print(f"livecell explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    names: list[str] = list(card["classes"])
    class_index = None
    if args.class_name is not None:
        if args.class_name not in names:
            print(
                f"livecell explain: --class {args.class_name!r} is not one of {names}",
                file=sys.stderr,
            )
            return EXIT_USAGE
        class_index = names.index(args.class_name)
    try:
        tiff = args.image.suffix.lower() in (".tif", ".tiff")
        image = read_frame(args.image) if tiff else read_image(args.image)
    except DataError as exc:
        print(f"livecell explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if image.shape[0] != card["input"]["channels"]:
        print(
            f"livecell explain: {args.image} has {image.shape[0]} channels, the model takes "
            f"{card['input']['channels']}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    norm = card_normalisation(card)
    patch = (int(card["input"]["height"]), int(card["input"]["width"]))
    try:
        heat, classes = explain_image(
            model, image, patch_size=patch, mean=norm.mean, std=norm.std, class_index=class_index
        )
    except ValueError as exc:
        print(f"livecell explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or args.image.with_name(args.image.name + ".gradcam.png")
    if not cv2.imwrite(str(out), overlay_png(image, heat, classes, names)):
        print(f"livecell explain: cannot write {out}", file=sys.stderr)
        return EXIT_FAILURE
    counts = {names[i]: int((classes == i).sum()) for i in sorted(set(classes.ravel().tolist()))}
    print(f"wrote {out}: {classes.size} patches, predicted {counts}")
    return EXIT_OK
