"""One suite for the backend protocol, run against every backend available here.

ONNX Runtime (with and without IOBinding) and torch run everywhere, torch on CUDA where a
GPU exists; TensorRT runs where
``tensorrt`` imports and a GPU exists; Triton where ``tritonclient`` imports and
``LIVECELL_TRITON_URL`` names a server serving the tiny model as ``LIVECELL_TRITON_MODEL``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from livecell.engine.backends import Backend, MissingExtra, choose_auto, open_backend
from livecell.engine.backends.select import tensorrt_usable
from livecell.engine.export import torch_probabilities

MakePatches = Callable[[int], np.ndarray]
TOLERANCE = 1e-4


def _skip_reason(kind: str) -> str | None:
    if kind == "tensorrt":
        usable, why = tensorrt_usable()
        return None if usable else why
    if kind == "torch-cuda":
        import torch

        return None if torch.cuda.is_available() else "no CUDA GPU for torch"
    if kind == "triton":
        if find_spec("tritonclient") is None:
            return "tritonclient is not installed (pip install 'livecell[triton]')"
        if not os.environ.get("LIVECELL_TRITON_URL"):
            return "no Triton server: set LIVECELL_TRITON_URL (and LIVECELL_TRITON_MODEL)"
    return None


KINDS = ["onnxruntime", "onnxruntime-run", "torch", "torch-cuda", "tensorrt", "triton"]


def _open(kind: str, tiny: object, max_batch: int) -> Backend:
    onnx, program = tiny.onnx, tiny.program  # type: ignore[attr-defined]
    if kind == "onnxruntime":
        return open_backend("onnxruntime", onnx, max_batch=max_batch)
    if kind == "onnxruntime-run":
        return open_backend("onnxruntime", onnx, max_batch=max_batch, io_binding=False)
    if kind == "torch":
        return open_backend("torch", program, max_batch=max_batch, device="cpu")
    if kind == "torch-cuda":
        return open_backend("torch", program, max_batch=max_batch, device="cuda")
    if kind == "tensorrt":
        return open_backend("tensorrt", onnx, max_batch=max_batch, fp16=False)
    return open_backend(
        "triton",
        os.environ.get("LIVECELL_TRITON_MODEL", "tiny"),
        max_batch=max_batch,
        url=os.environ["LIVECELL_TRITON_URL"],
    )


@pytest.fixture(params=KINDS)
def open_kind(request: pytest.FixtureRequest, tiny: object) -> Iterator[Callable[[int], Backend]]:
    """``open_kind(max_batch)``: the parametrised backend over the tiny model; all closed after."""
    kind: str = request.param
    reason = _skip_reason(kind)
    if reason is not None:
        pytest.skip(reason)
    opened: list[Backend] = []

    def make(max_batch: int = 64) -> Backend:
        backend = _open(kind, tiny, max_batch)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


class TestBackend:
    """What every backend promises (see ``livecell/engine/backends/_protocol.py``)."""

    def test_is_a_backend(self, open_kind: Callable[[int], Backend]) -> None:
        backend = open_kind(64)
        assert isinstance(backend, Backend)
        assert backend.name in {"onnxruntime", "torch", "tensorrt", "triton"}
        assert backend.model_name
        assert backend.device
        assert backend.max_batch == 64

    def test_probabilities(
        self, open_kind: Callable[[int], Backend], make_patches: MakePatches
    ) -> None:
        probabilities = open_kind(64).predict(make_patches(9))
        assert probabilities.shape == (9, 5)
        assert probabilities.dtype == np.float32
        assert np.all(probabilities >= 0)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    def test_matches_torch(
        self, open_kind: Callable[[int], Backend], make_patches: MakePatches, tiny: object
    ) -> None:
        x = make_patches(20)
        reference = torch_probabilities(tiny.model, x)  # type: ignore[attr-defined]
        got = open_kind(64).predict(x)
        assert float(np.max(np.abs(got - reference))) < TOLERANCE

    @pytest.mark.parametrize("n", [1, 7, 130])
    def test_batching_equals_one_shot(
        self, open_kind: Callable[[int], Backend], make_patches: MakePatches, n: int
    ) -> None:
        x = make_patches(n)
        batched = open_kind(64).predict(x)
        one_shot = open_kind(256).predict(x)
        assert batched.shape == (n, 5)
        np.testing.assert_allclose(batched, one_shot, atol=1e-5)  # GPUs pick kernels by batch

    def test_empty_and_float64(
        self, open_kind: Callable[[int], Backend], make_patches: MakePatches
    ) -> None:
        backend = open_kind(64)
        x = make_patches(3)
        np.testing.assert_allclose(
            backend.predict(x.astype(np.float64)), backend.predict(x), atol=1e-6
        )
        assert backend.predict(x[:0]).shape == (0, 5)

    def test_rejects_bad_patches(
        self, open_kind: Callable[[int], Backend], make_patches: MakePatches
    ) -> None:
        backend = open_kind(64)
        with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
            backend.predict(make_patches(2)[0])
        with pytest.raises(TypeError, match="floating point"):
            backend.predict(make_patches(2).astype(np.uint16))

    def test_closed(self, open_kind: Callable[[int], Backend], make_patches: MakePatches) -> None:
        backend = open_kind(64)
        backend.close()
        backend.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            backend.predict(make_patches(1))


def test_backends_agree(tiny: object, make_patches: MakePatches) -> None:
    x = make_patches(50)
    with (
        open_backend("onnxruntime", tiny.onnx) as ort_backend,  # type: ignore[attr-defined]
        open_backend("torch", tiny.program, device="cpu") as torch_backend,  # type: ignore[attr-defined]
    ):
        difference = np.max(np.abs(ort_backend.predict(x) - torch_backend.predict(x)))
    assert float(difference) < TOLERANCE


def test_onnxruntime_knows_the_input_shape(tiny: object, make_patches: MakePatches) -> None:
    backend = open_backend("onnxruntime", tiny.onnx)  # type: ignore[attr-defined]
    with backend, pytest.raises(ValueError, match="takes"):
        backend.predict(make_patches(2)[:, :1])


def test_auto_is_onnxruntime_cpu_here(tiny: object) -> None:
    if tensorrt_usable()[0] or choose_auto()[1] == "cuda":
        pytest.skip("this machine has a GPU path; auto does not pick the CPU")
    with capture_logs() as logs:
        backend = open_backend("auto", tiny.onnx)  # type: ignore[attr-defined]
    with backend:
        assert (backend.name, backend.device) == ("onnxruntime", "cpu")
    chosen = [e for e in logs if e["event"] == "engine backend chosen"]
    assert len(chosen) == 1
    assert chosen[0]["backend"] == "onnxruntime"
    assert "tensorrt" in chosen[0]["reason"]
    assert "CUDA" in chosen[0]["reason"]


@pytest.mark.skipif(find_spec("tensorrt") is not None, reason="tensorrt is installed here")
def test_missing_tensorrt_names_the_extra(tiny: object) -> None:
    with pytest.raises(MissingExtra, match=r"pip install 'livecell\[tensorrt\]'"):
        open_backend("tensorrt", tiny.onnx)  # type: ignore[attr-defined]


@pytest.mark.skipif(find_spec("tritonclient") is not None, reason="tritonclient is installed")
def test_missing_tritonclient_names_the_extra() -> None:
    with pytest.raises(MissingExtra, match=r"pip install 'livecell\[triton\]'") as caught:
        open_backend("triton", "tiny", url="127.0.0.1:8000")
    assert caught.value.extra == "triton"


def test_missing_torch_names_the_extra(tiny: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtra, match=r"pip install 'livecell\[train\]'"):
        open_backend("torch", tiny.program)  # type: ignore[attr-defined]


def test_missing_extra_is_an_import_error() -> None:
    assert issubclass(MissingExtra, ImportError)


@pytest.mark.parametrize("kind", ["onnxruntime", "torch", "auto"])
def test_bad_model_path(tmp_path: Path, kind: str) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        open_backend(kind, tmp_path / "missing.onnx")


def test_torch_rejects_unknown_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"\*\.pt2"):
        open_backend("torch", path)


def test_unknown_backend(tiny: object) -> None:
    with pytest.raises(ValueError, match="unknown engine backend"):
        open_backend("cuda-magic", tiny.onnx)  # type: ignore[attr-defined]


def test_max_batch_must_be_positive(tiny: object) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        open_backend("onnxruntime", tiny.onnx, max_batch=0)  # type: ignore[attr-defined]
