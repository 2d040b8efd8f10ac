"""Build a TensorRT engine from the exported ONNX, once per machine.

An engine is tied to the GPU model and the TensorRT version it was built with, so the
ONNX stays the portable artefact and engines are built on the target and cached under
``cache_dir`` keyed by (sha256 of the ONNX file, GPU name, TensorRT version, build
options). A second call with the same key returns the cached file without building.
The builder's timing cache (per GPU and TensorRT version) is loaded from and saved to a
file beside the engines, so rebuilding for another model or batch range is faster.

Written against the TensorRT 10 Python API (``trt.Builder``, ``trt.OnnxParser``,
``BuilderFlag.FP16``, an optimisation profile for the dynamic batch, ``create_timing_cache``
/ ``set_timing_cache``, ``build_serialized_network``). ``tensorrt`` is imported lazily;
without it the error names ``pip install 'livecell[tensorrt]'``.

Recipe on a GPU host::

    pip install 'livecell[tensorrt]'
    python -c "from livecell.engine.tensorrt_build import build_engine; \
print(build_engine('model.onnx', max_batch=64))"
    # then backend = "tensorrt" (or "auto") with model = "model.onnx" in livecell.toml
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import structlog

from livecell.engine import _cuda
from livecell.engine._extras import require

log = structlog.get_logger("livecell.engine")


def import_tensorrt() -> ModuleType:
    return require("tensorrt", extra="tensorrt", purpose="TensorRT")


def default_cache_dir() -> Path:
    """The user's cache folder, for direct uses (``livecell export --tensorrt``); the
    daemon passes its ``state_dir/engine`` instead."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livecell" / "tensorrt"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "unknown"


@dataclass(frozen=True, slots=True)
class EngineKey:
    """What an engine depends on; its file name under the cache folder."""

    onnx_sha256: str
    gpu_name: str
    tensorrt_version: str
    max_batch: int
    fp16: bool

    def engine_path(self, cache_dir: Path) -> Path:
        precision = "fp16" if self.fp16 else "fp32"
        name = f"{_slug(self.gpu_name)}-trt{self.tensorrt_version}-b{self.max_batch}-{precision}"
        return cache_dir / self.onnx_sha256[:32] / f"{name}.engine"

    def timing_cache_path(self, cache_dir: Path) -> Path:
        return cache_dir / f"timing-{_slug(self.gpu_name)}-trt{self.tensorrt_version}.cache"


def engine_key(
    onnx_path: str | Path, *, max_batch: int, fp16: bool, gpu_name: str, tensorrt_version: str
) -> EngineKey:
    return EngineKey(file_sha256(onnx_path), gpu_name, tensorrt_version, max_batch, fp16)


def build_engine(
    onnx_path: str | Path,
    *,
    max_batch: int = 64,
    opt_batch: int | None = None,
    fp16: bool = True,
    cache_dir: str | Path | None = None,
    workspace_bytes: int = 1 << 30,
) -> Path:
    """The serialized engine for ``onnx_path`` on this GPU: from the cache, or built now.

    The optimisation profile covers batch 1..``max_batch`` (tuned for ``opt_batch``,
    default ``max_batch``); spatial size and channels are those of the ONNX input.
    """
    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {onnx_path}")
    if _cuda.gpu_count() == 0:
        raise RuntimeError("building a TensorRT engine needs an NVIDIA GPU; none is visible")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = engine_key(
        onnx_path,
        max_batch=max_batch,
        fp16=fp16,
        gpu_name=_cuda.gpu_name(),
        tensorrt_version=str(trt.__version__),
    )
    engine_path = key.engine_path(cache)
    if engine_path.is_file():
        log.info("tensorrt engine cached", engine=str(engine_path), onnx=str(onnx_path))
        return engine_path

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    if network.num_inputs != 1:
        raise ValueError(f"{onnx_path}: expected one input, found {network.num_inputs}")
    tensor = network.get_input(0)
    _, channels, height, width = tuple(tensor.shape)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    opt = min(max_batch, opt_batch or max_batch)
    profile.set_shape(
        tensor.name,
        (1, channels, height, width),
        (opt, channels, height, width),
        (max_batch, channels, height, width),
    )
    config.add_optimization_profile(profile)
    timing_path = key.timing_cache_path(cache)
    timing_cache = config.create_timing_cache(
        timing_path.read_bytes() if timing_path.is_file() else b""
    )
    config.set_timing_cache(timing_cache, False)

    log.info(
        "building tensorrt engine",
        onnx=str(onnx_path),
        gpu=key.gpu_name,
        fp16=fp16,
        max_batch=max_batch,
        tensorrt=key.tensorrt_version,
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    _write_atomic(engine_path, bytes(serialized))
    _write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
    log.info("tensorrt engine built", engine=str(engine_path))
    return engine_path


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
