"""The engine benchmark (issue 4, acceptance 4): backends x models x batch sizes.

Per backend (ONNX Runtime; torch eager; on a GPU also TensorRT and compiled fp16 torch)
and model (compact, ResNet-18, ResNet-101 from the registry, random weights) at 160 x 160
and batch sizes 1, 8, 64: patches/s, latency per batch (p50, p99) and achieved GFLOP/s
against ``count_flops``. ONNX Runtime and torch are measured in the same run, and the
ratio ONNX Runtime / torch eager is printed (target: >= 1.5 for compact at batch 64).

Run as ``python benchmarks/engine.py`` (``--quick`` for a short run) or
``livecell bench engine``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livecell.argtypes import at_least_one, non_negative, positive_float

RATIO_TARGET = 1.5


@dataclass(frozen=True, slots=True)
class Row:
    backend: str
    model: str
    batch: int
    latencies_s: tuple[float, ...]
    flops_per_patch: int

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latencies_s, 50)) * 1000

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_s, 99)) * 1000

    @property
    def patches_per_s(self) -> float:
        return self.batch * len(self.latencies_s) / sum(self.latencies_s)

    @property
    def gflops(self) -> float:
        return self.patches_per_s * self.flops_per_patch / 1e9


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livecell bench engine", description=__doc__.split("\n")[0])
    p.add_argument(
        "--models", type=_models, default="compact,resnet18,resnet101", help="comma-separated"
    )
    p.add_argument("--batches", type=_batches, default="1,8,64", help="comma-separated sizes")
    p.add_argument("--size", type=at_least_one, default=160)
    p.add_argument("--channels", type=at_least_one, default=1)
    p.add_argument("--classes", type=at_least_one, default=5)
    p.add_argument("--frames", type=at_least_one, default=None, help="timed batches per cell")
    p.add_argument("--seconds", type=positive_float, default=3.0, help="time budget per cell")
    p.add_argument("--threads", type=non_negative, default=0, help="intra-op threads (0: all)")
    p.add_argument("--quick", action="store_true", help="short run: ~0.6 s per cell")
    return p


def _models(text: str) -> list[str]:
    from livecell.engine.models.registry import ARCHITECTURES

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ARCHITECTURES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {unknown or text!r}; one or more of {', '.join(ARCHITECTURES)}"
        )
    return names


def _batches(text: str) -> list[int]:
    try:
        return [at_least_one(size) for size in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"batch sizes {text!r}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from livecell.engine.backends import open_backend
    from livecell.engine.export import export_onnx, export_torch_program
    from livecell.engine.models.registry import build_model, count_flops

    budget = 0.6 if args.quick else args.seconds
    batches: list[int] = args.batches
    gpu = torch.cuda.is_available()
    rows: list[Row] = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="livecell-bench-engine-") as tmp:
        for arch in args.models:
            torch.manual_seed(0)
            model = build_model(arch, in_channels=args.channels, num_classes=args.classes).eval()
            flops = count_flops(model, (1, args.channels, args.size, args.size))
            onnx = export_onnx(
                model, Path(tmp) / f"{arch}.onnx", in_channels=args.channels, input_size=args.size
            )
            pt2 = export_torch_program(
                model, Path(tmp) / f"{arch}.pt2", in_channels=args.channels, input_size=args.size
            )
            kinds: list[tuple[str, str, Path, dict[str, Any]]] = [
                ("onnxruntime", "onnxruntime", onnx, {"device": "cpu"}),
                ("torch eager", "torch", pt2, {"device": "cpu"}),
            ]
            if gpu:
                kinds += [
                    (
                        "torch fp16 compiled",
                        "torch",
                        pt2,
                        {"device": "cuda", "half": True, "compile": True},
                    ),
                    ("tensorrt fp16", "tensorrt", onnx, {}),
                ]
            for label, name, path, options in kinds:
                try:
                    backend = open_backend(
                        name, path, max_batch=max(batches), threads=args.threads, **options
                    )
                except ImportError as exc:
                    print(f"skipped {label}: {exc}")
                    continue
                try:
                    for batch in batches:
                        x = rng.normal(size=(batch, args.channels, args.size, args.size))
                        x = x.astype(np.float32)
                        rows.append(
                            Row(
                                label,
                                arch,
                                batch,
                                _time(backend.predict, x, args.frames, budget),
                                flops,
                            )
                        )
                finally:
                    backend.close()
    print(render(args, rows))
    return 0


def _time(predict: object, x: np.ndarray, frames: int | None, budget_s: float) -> tuple[float, ...]:
    call = predict  # a Backend.predict
    for _ in range(2):
        call(x)  # type: ignore[operator]
    latencies: list[float] = []
    started = time.perf_counter()
    while (frames is None and time.perf_counter() - started < budget_s) or (
        frames is not None and len(latencies) < frames
    ):
        t0 = time.perf_counter()
        call(x)  # type: ignore[operator]
        latencies.append(time.perf_counter() - t0)
        if frames is None and len(latencies) >= 3 and time.perf_counter() - started >= budget_s:
            break
    while len(latencies) < 3:
        t0 = time.perf_counter()
        call(x)  # type: ignore[operator]
        latencies.append(time.perf_counter() - t0)
    return tuple(latencies)


def render(args: argparse.Namespace, rows: list[Row]) -> str:
    import onnxruntime
    import torch

    lines = [
        f"livecell engine benchmark: {os.cpu_count()} CPUs ({platform.processor() or '?'}), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
        f"{onnxruntime.__version__}, {args.size} x {args.size} x {args.channels}, random weights",
        "",
        f"{'backend':<22}{'model':<11}{'batch':>6}{'patches/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'GFLOP/s':>9}{'GFLOP/patch':>12}{'runs':>6}",
    ]
    for r in rows:
        lines.append(
            f"{r.backend:<22}{r.model:<11}{r.batch:>6}{r.patches_per_s:>11.1f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}{r.gflops:>9.1f}{r.flops_per_patch / 1e9:>12.3f}"
            f"{len(r.latencies_s):>6}"
        )
    lines += ["", "ONNX Runtime / torch eager (patches/s):"]
    by_key = {(r.backend, r.model, r.batch): r for r in rows}
    for (backend, model, batch), r in by_key.items():
        if backend != "onnxruntime" or ("torch eager", model, batch) not in by_key:
            continue
        ratio = r.patches_per_s / by_key[("torch eager", model, batch)].patches_per_s
        note = ""
        if model == "compact" and batch == 64:
            note = f"   (target >= {RATIO_TARGET}: {'met' if ratio >= RATIO_TARGET else 'MISSED'})"
        lines.append(f"  {model:<11} batch {batch:>3}: {ratio:5.2f}x{note}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
