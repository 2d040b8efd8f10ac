"""``livecell export``: a trained model folder to ONNX (checked against torch), and TensorRT.

The ONNX is the portable artefact: opset 17 or later, a dynamic batch, softmax
in the graph. Parity is measured on fresh inputs (seeded random normal ones and
smooth structured ones, already normalised as the model expects) and reported;
above the fp32 tolerance the command fails and the file at ``--out`` (the model
the daemon runs) is left as it was. ``--tensorrt`` then builds (or
finds in its cache) the engine for this GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

DESCRIPTION = (
    "Export a model folder written by `livecell train` (model.pt + model_card.json) to "
    "ONNX, check it against torch on fresh inputs (max abs difference reported; fp32 must "
    "stay under 1e-4), and with --tensorrt build a TensorRT engine for this GPU."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", type=Path, metavar="MODEL_DIR", help="the folder `livecell train --out` wrote"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="ONNX file to write (default: MODEL_DIR/model.onnx)"
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument(
        "--tensorrt",
        action="store_true",
        help="also build the TensorRT engine (needs livecell[tensorrt] and a GPU)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=64,
        help="TensorRT: largest batch of the optimisation profile (default: 64)",
    )


def run(args: argparse.Namespace) -> int:
    from livecell.engine._extras import MissingExtra

    card_path = args.model_dir / "model_card.json"
    if not card_path.is_file():
        print(
            f"livecell export: {card_path} not found (a `livecell train --out` folder?)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    out = args.out or args.model_dir / "model.onnx"
    problem = _argument_problem(args, out)
    if problem is not None:
        print(f"livecell export: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.tensorrt:  # before the ONNX file is replaced, not after
            from livecell.engine.tensorrt_build import import_tensorrt

            import_tensorrt()
        return _export(args, out)
    except MissingExtra as exc:
        print(f"livecell export: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _argument_problem(args: argparse.Namespace, out: Path) -> str | None:
    """What is wrong with the command line, in words; None if nothing."""
    from livecell.engine.export import MAX_OPSET, MIN_OPSET

    if not MIN_OPSET <= args.opset <= MAX_OPSET:
        return f"--opset must be {MIN_OPSET} to {MAX_OPSET}, got {args.opset}"
    if args.max_batch < 1:
        return f"--max-batch must be 1 or more, got {args.max_batch}"
    if out.is_dir():
        return f"--out {out} is a folder; give the ONNX file to write"
    if out.suffix.lower() != ".onnx":
        return f"--out {out}: give an .onnx file to write (not the weights or the card)"
    if not out.parent.is_dir():
        return f"--out {out}: the folder {out.parent} is not there"
    return None


def _export(args: argparse.Namespace, out: Path) -> int:
    from livecell.engine.export import PARITY_TOLERANCE, check_parity, export_onnx, onnx_opset
    from livecell.training.train import load_patch_model

    try:
        model, card = load_patch_model(args.model_dir)
    except ValueError as exc:
        print(f"livecell export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    channels = int(card["input"]["channels"])
    height, width = int(card["input"]["height"]), int(card["input"]["width"])
    trial = out.with_name(f".{out.name}.checking")  # the file at --out is replaced only if good
    try:
        export_onnx(
            model, trial, in_channels=channels, input_size=(height, width), opset=args.opset
        )
        worst = check_parity(model, trial, parity_inputs(channels, height, width))
        if worst >= PARITY_TOLERANCE:
            print(
                f"livecell export: ONNX Runtime vs torch max abs difference {worst:.2e} is OVER "
                f"the {PARITY_TOLERANCE:g} fp32 tolerance; {out} left as it was",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        opset = onnx_opset(trial)
        trial.replace(out)
    except OSError as exc:
        print(f"livecell export: cannot write {out}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        trial.unlink(missing_ok=True)
    print(
        f"wrote {out} (opset {opset}, dynamic batch); ONNX Runtime vs torch max abs "
        f"difference {worst:.2e}: ok"
    )
    if args.tensorrt:
        from livecell.engine.tensorrt_build import build_engine

        engine = build_engine(out, max_batch=args.max_batch)
        print(f"TensorRT engine: {engine}")
    return EXIT_OK


def parity_inputs(channels: int, height: int, width: int, *, seed: int = 0) -> list[np.ndarray]:
    """Normalised-scale inputs: random normal patches, and smooth ramps with a bright blob."""
    rng = np.random.default_rng(seed)
    random = rng.standard_normal((8, channels, height, width)).astype(np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (xs / width - 0.5) + (ys / height - 0.5)
    blob = 2.0 * np.exp(-((xs - width / 3) ** 2 + (ys - height / 2) ** 2) / (0.02 * width * height))
    structured = np.stack(
        [np.broadcast_to(ramp + k * blob, (channels, height, width)) for k in range(4)]
    ).astype(np.float32)
    return [random, structured]
