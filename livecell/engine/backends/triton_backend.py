"""A remote NVIDIA Triton Inference Server, for when one machine's GPUs are not enough.

``model_path`` is the model's name in the server's repository (deploy the exported ONNX
there with a ``config.pbtxt`` whose input is ``patches`` and output ``probabilities``, and
``max_batch_size`` >= ``max_batch``). ``url`` is ``host:port`` (HTTP, default 8000) or,
with ``protocol="grpc"``, the gRPC port (default 8001).

``tritonclient`` is imported lazily; without it the error names
``pip install 'livecell[triton]'``. Written against the documented tritonclient API
(``InferenceServerClient``, ``InferInput``, ``InferRequestedOutput``); not run against
a server in this project's tests.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from livecell.engine._extras import require
from livecell.engine.backends._batched import DEFAULT_MAX_BATCH, BatchedBackend


class TritonBackend(BatchedBackend):
    name = "triton"

    def __init__(
        self,
        model_path: str,
        *,
        url: str = "127.0.0.1:8000",
        protocol: Literal["http", "grpc"] = "http",
        max_batch: int = DEFAULT_MAX_BATCH,
        model_version: str = "",
        timeout_s: float = 30.0,
    ) -> None:
        super().__init__(max_batch=max_batch)
        module = "tritonclient.grpc" if protocol == "grpc" else "tritonclient.http"
        self._client_module: Any = require(module, extra="triton", purpose="the triton backend")
        if protocol == "grpc":
            self._client: Any = self._client_module.InferenceServerClient(url=url)
        else:
            self._client = self._client_module.InferenceServerClient(
                url=url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        self.model_name = str(model_path)
        self._version = model_version
        self.device = f"{protocol}://{url}"
        if not self._client.is_model_ready(self.model_name, self._version):
            raise RuntimeError(f"Triton at {url} has no ready model {self.model_name!r}")
        metadata = self._client.get_model_metadata(self.model_name, self._version)
        if protocol == "grpc":
            inputs = [(i.name, list(i.shape)) for i in metadata.inputs]
            outputs = [(o.name, list(o.shape)) for o in metadata.outputs]
        else:
            inputs = [(i["name"], list(i["shape"])) for i in metadata["inputs"]]
            outputs = [(o["name"], list(o["shape"])) for o in metadata["outputs"]]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"Triton model {self.model_name!r}: expected one input and one output")
        (self._input, in_shape), (self._output, out_shape) = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) if int(d) > 0 else None for d in in_shape[-3:])  # type: ignore[assignment]
        self.num_classes = int(out_shape[-1])

    def _run_into(self, batch: np.ndarray, out: np.ndarray) -> None:
        request = self._client_module.InferInput(self._input, list(batch.shape), "FP32")
        request.set_data_from_numpy(batch)
        wanted = self._client_module.InferRequestedOutput(self._output)
        result = self._client.infer(
            self.model_name, [request], model_version=self._version, outputs=[wanted]
        )
        out[...] = result.as_numpy(self._output)

    def _release(self) -> None:
        self._client.close()
