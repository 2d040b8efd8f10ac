"""Model definitions: shapes, sizes, gradients, FLOPs, the sequence helpers, ONNX parity."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

pytest.importorskip("torch")

import torch

from livecell.engine.models import (
    ARCHITECTURES,
    build_model,
    build_sequence_model,
    count_flops,
    monotone_death_penalty,
)

# The legacy (TorchScript) exporter is the one that needs only `onnx` and writes opset 17;
# torch >= 2.9 deprecates it, and its LSTM symbolic and torch's own RNN input checks warn
# while tracing. Third-party warnings, silenced for the export test only.
ONNX_EXPORT_WARNINGS = [
    "ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning",
    "ignore:The feature will be removed:DeprecationWarning",
    "ignore:Converting a tensor to a Python boolean:torch.jit.TracerWarning",
    "ignore:Exporting a model to ONNX with a batch_size other than 1:UserWarning",
]

# fp32 logits of the 50- and 101-layer nets differ from torch by 1e-4..5e-4 under ONNX
# Runtime's own convolution kernels (accumulation order), with or without its graph
# rewrites; everything else stays under 1e-4.
PARITY_ATOL = {"resnet50": 1e-3, "resnet101": 1e-3}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_output_shape_any_channels_64(arch: str, channels: int) -> None:
    model = build_model(arch, in_channels=channels, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 64, 64))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_output_shape_160_and_non_square(arch: str) -> None:
    model = build_model(arch, in_channels=3, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 160, 160)).shape == (1, 7)
        assert model(torch.randn(1, 3, 96, 128)).shape == (1, 7)


def test_unknown_arch_and_bad_counts_raise() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("vgg16", in_channels=1, num_classes=2)
    with pytest.raises(ValueError, match="positive"):
        build_model("compact", in_channels=0, num_classes=2)


def test_fusion_rejects_other_channel_count() -> None:
    model = build_model("fusion", in_channels=3, num_classes=2)
    with pytest.raises(ValueError, match="zip"):
        model(torch.randn(1, 2, 64, 64))


@pytest.mark.parametrize(
    ("arch", "millions"),
    [("resnet18", 11.69), ("resnet34", 21.80), ("resnet50", 25.56), ("resnet101", 44.55)],
)
def test_parameter_counts_match_torchvision(arch: str, millions: float) -> None:
    model = build_model(arch, in_channels=3, num_classes=1000)
    assert _params(model) / 1e6 == pytest.approx(millions, abs=0.01)


@pytest.mark.parametrize("arch", ["compact", "fusion"])
def test_small_models_stay_small(arch: str) -> None:
    assert 0.1e6 < _params(build_model(arch, in_channels=3, num_classes=5)) < 1e6


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_gradients_reach_every_parameter(arch: str) -> None:
    model = build_model(arch, in_channels=2, num_classes=3).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 2, 64, 64)), torch.tensor([0, 2]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_count_flops_resnet18_224_matches_published() -> None:
    model = build_model("resnet18", in_channels=3, num_classes=1000)
    flops = count_flops(model, (1, 3, 224, 224))
    assert flops == pytest.approx(3.64e9, rel=0.05)  # 1.82 GMAC x 2
    assert model.training  # the training flag is restored


def test_count_flops_scales_with_batch_and_counts_the_lstm() -> None:
    model = build_model("compact", in_channels=1, num_classes=5)
    assert count_flops(model, (4, 1, 160, 160)) == 4 * count_flops(model, (1, 1, 160, 160))
    seq = build_sequence_model(image_channels=1, num_classes=2, hidden_size=8)
    one = count_flops(seq, (1, 3, 2, 64, 64), (1, 3, 5))
    lstm_macs = 3 * 4 * 8 * (seq.encoder.feature_dim + 5 + 8)
    encoder = count_flops(seq.encoder, (3, 2, 64, 64))
    heads = 2 * (3 * 8 * 2 + 8 * 2)
    assert one == encoder + 2 * lstm_macs + heads


@pytest.mark.parametrize(("batch", "steps"), [(1, 1), (2, 5), (3, 12)])
def test_sequence_model_shapes_variable_length(batch: int, steps: int) -> None:
    model = build_sequence_model(image_channels=1, num_classes=4).eval()
    assert model.in_channels == 2
    with torch.no_grad():
        frame_logits, sequence_logits = model(
            torch.randn(batch, steps, 2, 64, 64), torch.randn(batch, steps, 5)
        )
    assert frame_logits.shape == (batch, steps, 4)
    assert sequence_logits.shape == (batch, 4)


def test_sequence_model_backward() -> None:
    model = build_sequence_model(image_channels=2, num_classes=2).train()
    frame_logits, sequence_logits = model(torch.randn(2, 4, 3, 48, 48), torch.randn(2, 4, 5))
    death = torch.softmax(frame_logits, dim=-1)[..., 1]
    loss = sequence_logits.sum() + monotone_death_penalty(death)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


probabilities = arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(1, 12)),
    elements=st.floats(0, 1, width=32),
)


@settings(max_examples=50, deadline=None)
@given(probabilities)
def test_monotone_penalty_zero_for_non_decreasing(p: np.ndarray) -> None:
    penalty = monotone_death_penalty(torch.from_numpy(np.sort(p, axis=1)))
    assert penalty.item() == 0.0


@settings(max_examples=50, deadline=None)
@given(probabilities, st.data())
def test_monotone_penalty_positive_after_a_downward_step(
    p: np.ndarray, data: st.DataObject
) -> None:
    if p.shape[1] < 2:
        p = np.concatenate([p, p], axis=1)
    p = np.sort(p, axis=1)
    row = data.draw(st.integers(0, p.shape[0] - 1))
    t = data.draw(st.integers(0, p.shape[1] - 2))
    p[row, t + 1] = p[row, t] - data.draw(st.floats(1e-3, 1.0)) * (p[row, t] + 1e-3)
    if p[row, t + 1] >= p[row, t]:  # p[row, t] was ~0: step down from 1 instead
        p[row, t] = 1.0
    expected = np.maximum(p[:, :-1] - p[:, 1:], 0).mean()
    penalty = monotone_death_penalty(torch.from_numpy(p)).item()
    assert penalty > 0
    assert penalty == pytest.approx(expected, rel=1e-5)


def test_monotone_penalty_validates_shape() -> None:
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        monotone_death_penalty(torch.zeros(5))


def _calibrate_batch_norm(model: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """Give BN running statistics from data, as training would: with the initial identity
    statistics a 101-layer net's logits reach ~1e3 and fp32 parity means nothing."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(*shape))
    model.eval()


def _onnx_session(model: torch.nn.Module, args: tuple[torch.Tensor, ...], **kwargs: Any) -> Any:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    buffer = io.BytesIO()
    # the stub says str | PathLike; the exporter writes to any binary file object
    torch.onnx.export(model, args, buffer, dynamo=False, opset_version=17, **kwargs)  # type: ignore[arg-type]
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


@pytest.mark.filterwarnings(*ONNX_EXPORT_WARNINGS)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_onnx_export_dynamic_batch_matches_torch(arch: str) -> None:
    model = build_model(arch, in_channels=3, num_classes=4)
    _calibrate_batch_norm(model, (8, 3, 64, 64))
    session = _onnx_session(
        model,
        (torch.randn(1, 3, 64, 64),),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    x = torch.randn(5, 3, 64, 64)  # another batch size than the traced one
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (5, 4)
    assert np.abs(got - want).max() < PARITY_ATOL.get(arch, 1e-4)


@pytest.mark.filterwarnings(*ONNX_EXPORT_WARNINGS)
def test_onnx_export_sequence_model_dynamic_batch_and_length() -> None:
    model = build_sequence_model(image_channels=1, num_classes=3).eval()
    session = _onnx_session(
        model,
        (torch.randn(1, 4, 2, 64, 64), torch.randn(1, 4, 5)),
        input_names=["crops", "motion"],
        output_names=["frame_logits", "sequence_logits"],
        dynamic_axes={
            "crops": {0: "batch", 1: "time"},
            "motion": {0: "batch", 1: "time"},
            "frame_logits": {0: "batch", 1: "time"},
            "sequence_logits": {0: "batch"},
        },
    )
    crops, motion = torch.randn(3, 7, 2, 64, 64), torch.randn(3, 7, 5)
    got = session.run(None, {"crops": crops.numpy(), "motion": motion.numpy()})
    with torch.no_grad():
        want = model(crops, motion)
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape)
        assert np.abs(g - w.numpy()).max() < 1e-4
