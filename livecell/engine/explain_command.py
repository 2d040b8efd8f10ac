"""``livecell explain``: Grad-CAM overlays for a patch or a whole frame, saved as PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

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
        help="PNG to write (default: IMAGE's name + .gradcam.png, in the current folder)",
    )
    parser.add_argument(
        "--class",
        dest="class_name",
        default=None,
        help="show the evidence for this class in every patch (default: for each patch's "
        "predicted class); the labels stay the predictions",
    )


def run(args: argparse.Namespace) -> int:
    from livecell.engine._extras import MissingExtra, require

    try:
        require("torch", extra="train", purpose="livecell explain")
    except MissingExtra as exc:
        print(f"livecell explain: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    import cv2

    from livecell.engine.explain import NOT_FINITE, explain_image, overlay_png
    from livecell.training.datasets import DataError, resize_chw
    from livecell.training.train import card_normalisation, load_patch_model

    if not (args.model_dir / "model_card.json").is_file():
        print(f"livecell explain: no model_card.json in {args.model_dir}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or Path(args.image.name + ".gradcam.png")
    problem = _out_problem(out, args.image)
    if problem:
        print(f"livecell explain: --out {out}: {problem}", file=sys.stderr)
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
        image = _read(args.image)
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
    resized = card.get("data", {}).get("patch_mode") == "resize"
    seen = resize_chw(image, patch) if resized else image  # as the model was trained
    try:
        heat, classes = explain_image(
            model, seen, patch_size=patch, mean=norm.mean, std=norm.std, class_index=class_index
        )
    except ValueError as exc:
        print(f"livecell explain: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if resized:
        heat = resize_chw(heat[None], image.shape[1:])[0]
    if not cv2.imwrite(str(out), overlay_png(image, heat, classes, names)):
        print(f"livecell explain: cannot write {out}", file=sys.stderr)
        return EXIT_FAILURE
    counts = {
        "not finite" if i == NOT_FINITE else names[i]: int((classes == i).sum())
        for i in sorted(set(classes.ravel().tolist()))
    }
    shown = f", evidence for {args.class_name}" if args.class_name else ""
    scale = " (the whole image, resized as in training)" if resized else ""
    patches = f"{classes.size} patch" + ("es" if classes.size != 1 else "")
    print(f"wrote {out}: {patches}{scale}, predicted {counts}{shown}")
    return EXIT_OK


def _read(path: Path) -> FloatArray:
    """A frame (a TIFF as the daemon's frames are: YX, CYX, a Z stack to its MIP), else
    the image as ``livecell train`` reads a folder tree's (RGB, channels without axes);
    raises ``DataError``."""
    from livecell.training.datasets import DataError, FrameAxesError, read_frame, read_image

    if path.suffix.lower() not in (".tif", ".tiff"):
        return read_image(path)
    try:
        return read_frame(path)
    except FrameAxesError as frame_error:
        try:
            return read_image(path)
        except DataError:
            raise frame_error from None


def _out_problem(out: Path, image: Path) -> str:
    """What is wrong with the overlay's path, in words ("" if nothing)."""
    if out.is_dir():
        return "is a folder; give the PNG to write"
    if out.resolve() == image.resolve():
        return "is the image itself"
    if out.suffix.lower() != ".png":
        return "give a .png file to write"
    if not out.parent.is_dir():
        return f"the folder {out.parent} is not there"
    return ""
