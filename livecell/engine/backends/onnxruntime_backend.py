"""ONNX Runtime: the default backend (CPU; CUDA where onnxruntime-gpu sees a GPU).

Each batch runs through an IOBinding whose output is bound to the slice of the final
``[N, K]`` array: ONNX Runtime writes the probabilities in place, so there is no
per-batch output allocation and no concatenation. On CUDA the input is copied host to
device by ONNX Runtime itself (``bind_cpu_input``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from livecell.engine.backends._batched import DEFAULT_MAX_BATCH, BatchedBackend, static_dim

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def cuda_available() -> bool:
    """Whether this onnxruntime build has the CUDA execution provider."""
    return CUDA_PROVIDER in ort.get_available_providers()


class OnnxRuntimeBackend(BatchedBackend):
    """An ONNX model (``patches`` -> ``probabilities``) in an ONNX Runtime session.

    ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
    ``intra_op_threads``: threads for one operator; 0 lets ONNX Runtime choose (all cores).
    ``io_binding``: write outputs in place (default); ``False`` uses ``session.run``.
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        intra_op_threads: int = 0,
        io_binding: bool = True,
    ) -> None:
        super().__init__(max_batch=max_batch)
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        if device == "cuda" and not cuda_available():
            raise RuntimeError(
                "device 'cuda' asked for, but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu on a machine with an NVIDIA GPU)"
            )
        use_cuda = device == "cuda" or (device == "auto" and cuda_available())
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, intra_op_threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if use_cuda else [CPU_PROVIDER]
        self._session: Any = ort.InferenceSession(
            str(path), sess_options=options, providers=providers
        )
        self.device = "cuda:0" if use_cuda else "cpu"
        self.model_name = path.stem
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{path}: expected one input and one output")
        self._input_name: str = inputs[0].name
        self._output_name: str = outputs[0].name
        in_shape, out_shape = inputs[0].shape, outputs[0].shape
        if len(in_shape) != 4 or len(out_shape) != 2 or static_dim(out_shape[1]) is None:
            raise ValueError(
                f"{path}: expected [N, C, H, W] -> [N, K], got {in_shape} -> {out_shape}"
            )
        self.input_shape = (
            static_dim(in_shape[1]),
            static_dim(in_shape[2]),
            static_dim(in_shape[3]),
        )
        self.num_classes = int(out_shape[1])
        self._io_binding = io_binding

    def _run_into(self, batch: np.ndarray, out: np.ndarray) -> None:
        if not self._io_binding:
            out[...] = self._session.run([self._output_name], {self._input_name: batch})[0]
            return
        binding = self._session.io_binding()
        binding.bind_cpu_input(self._input_name, batch)
        binding.bind_output(
            self._output_name,
            device_type="cpu",
            device_id=0,
            element_type=np.float32,
            shape=out.shape,
            buffer_ptr=out.ctypes.data,
        )
        self._session.run_with_iobinding(binding)

    def _release(self) -> None:
        self._session = None
