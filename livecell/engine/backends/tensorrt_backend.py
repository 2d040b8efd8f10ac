"""TensorRT: a serialized engine on an NVIDIA GPU, through the TensorRT 10 runtime API.

``model_path`` is either a serialized engine (``*.engine`` / ``*.plan``) or the exported
ONNX, from which an engine is built once per machine and cached
(``livecell.engine.tensorrt_build.build_engine``).

One CUDA stream; pinned (page-locked) host buffers and device buffers sized for
``max_batch``, allocated once; per batch: copy into the pinned input, ``set_input_shape``
for the dynamic batch, async host-to-device copy, ``execute_async_v3``, async
device-to-host copy, one stream synchronisation. CUDA calls go through ``cuda-python``
(see ``livecell.engine._cuda``), so a TensorRT host does not need torch.

Written against the documented TensorRT 10 and cuda-python 12 APIs; it runs only where
``tensorrt`` imports and a GPU exists (``tests/engine/test_tensorrt.py``, marked ``gpu``).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from livecell.engine import _cuda
from livecell.engine.backends._batched import DEFAULT_MAX_BATCH, BatchedBackend
from livecell.engine.tensorrt_build import build_engine, import_tensorrt


def _pinned(runtime: Any, count: int) -> tuple[int, np.ndarray]:
    """A page-locked float32 host buffer of ``count`` values: (pointer, numpy view)."""
    pointer = int(_cuda.call(runtime.cudaMallocHost(count * 4)))
    array = np.ctypeslib.as_array((ctypes.c_float * count).from_address(pointer))
    return pointer, array


class TensorRTBackend(BatchedBackend):
    """A TensorRT engine with input ``patches`` [N, C, H, W] and output [N, K], float32 I/O."""

    name = "tensorrt"

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        fp16: bool = True,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(max_batch=max_batch)
        trt = import_tensorrt()
        runtime = _cuda.cudart()
        self._runtime = runtime
        self._host: list[int] = []
        self._device_buffers: list[int] = []
        self._stream: Any = None
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"TensorRT model not found: {path}")
        if _cuda.gpu_count() == 0:
            raise RuntimeError("the tensorrt backend needs an NVIDIA GPU; none is visible")
        if path.suffix == ".onnx":
            path = build_engine(path, max_batch=max_batch, fp16=fp16, cache_dir=cache_dir)
        self.model_name = Path(model_path).stem
        self.device = "cuda:0"

        self._logger = trt.Logger(trt.Logger.WARNING)
        self._trt_runtime = trt.Runtime(self._logger)
        self._engine = self._trt_runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {path} (other GPU or version?)")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output, found {names}")
        self._input, self._output = inputs[0], outputs[0]
        for name in names:
            if self._engine.get_tensor_dtype(name) != trt.DataType.FLOAT:
                raise ValueError(f"{path}: tensor {name!r} is not float32")
        _, channels, height, width = tuple(self._engine.get_tensor_shape(self._input))
        profile_max = tuple(self._engine.get_tensor_profile_shape(self._input, 0)[2])
        if profile_max[0] < max_batch:
            raise ValueError(f"{path}: engine profile allows batch {profile_max[0]} < {max_batch}")
        self.input_shape = (int(channels), int(height), int(width))
        self.num_classes = int(tuple(self._engine.get_tensor_shape(self._output))[1])
        self._input_count = max_batch * channels * height * width
        self._output_count = max_batch * self.num_classes

        try:
            self._stream = _cuda.call(runtime.cudaStreamCreate())
            in_ptr, self._host_in = _pinned(runtime, self._input_count)
            self._host.append(in_ptr)
            out_ptr, self._host_out = _pinned(runtime, self._output_count)
            self._host.append(out_ptr)
            self._device_in = int(_cuda.call(runtime.cudaMalloc(self._input_count * 4)))
            self._device_buffers.append(self._device_in)
            self._device_out = int(_cuda.call(runtime.cudaMalloc(self._output_count * 4)))
            self._device_buffers.append(self._device_out)
        except BaseException:
            self._release()
            raise
        self._context.set_tensor_address(self._input, self._device_in)
        self._context.set_tensor_address(self._output, self._device_out)

    def _run_into(self, batch: np.ndarray, out: np.ndarray) -> None:
        runtime, n = self._runtime, batch.shape[0]
        host_in = self._host_in[: batch.size]
        host_in[...] = batch.reshape(-1)
        host_out = self._host_out[: n * self.num_classes]
        self._context.set_input_shape(self._input, tuple(batch.shape))
        kind = runtime.cudaMemcpyKind
        _cuda.call(
            runtime.cudaMemcpyAsync(
                self._device_in,
                self._host[0],
                batch.nbytes,
                kind.cudaMemcpyHostToDevice,
                self._stream,
            )
        )
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeError(f"TensorRT execution failed for {self.model_name!r}")
        _cuda.call(
            runtime.cudaMemcpyAsync(
                self._host[1],
                self._device_out,
                host_out.nbytes,
                kind.cudaMemcpyDeviceToHost,
                self._stream,
            )
        )
        _cuda.call(runtime.cudaStreamSynchronize(self._stream))
        out[...] = host_out.reshape(n, self.num_classes)

    def _release(self) -> None:
        # Each step on its own, so one failure does not leak the rest.
        runtime = self._runtime
        for pointer in self._device_buffers:
            runtime.cudaFree(pointer)
        for pointer in self._host:
            runtime.cudaFreeHost(pointer)
        self._device_buffers, self._host = [], []
        if self._stream is not None:
            runtime.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None
        self._engine = None
