"""Build a model by name, and count its FLOPs.

:func:`build_model` is the one place that maps an architecture name (what a model card
stores, what ``livecell train --arch`` takes) to a network; the per-track CNN-LSTM takes
two inputs and has its own builder, :func:`build_sequence_model`.

:func:`count_flops` is what the benchmark divides by time to report achieved GFLOP/s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from livecell.engine.models.fusion import IntermediateFusionNet
from livecell.engine.models.resnet import compact, resnet18, resnet34, resnet50, resnet101
from livecell.engine.models.sequence import SequenceClassifier

__all__ = ["ARCHITECTURES", "build_model", "build_sequence_model", "count_flops"]

_BUILDERS: dict[str, Callable[[int, int], nn.Module]] = {
    "compact": lambda c, k: compact(in_channels=c, num_classes=k),
    "resnet18": lambda c, k: resnet18(in_channels=c, num_classes=k),
    "resnet34": lambda c, k: resnet34(in_channels=c, num_classes=k),
    "resnet50": lambda c, k: resnet50(in_channels=c, num_classes=k),
    "resnet101": lambda c, k: resnet101(in_channels=c, num_classes=k),
    "fusion": lambda c, k: IntermediateFusionNet(in_channels=c, num_classes=k),
}

ARCHITECTURES: tuple[str, ...] = tuple(_BUILDERS)
"""Names :func:`build_model` accepts, smallest first."""


def build_model(arch: str, *, in_channels: int, num_classes: int) -> nn.Module:
    """A freshly initialised patch classifier: ``[B, in_channels, H, W] -> [B, num_classes]``.

    Any ``H, W`` of at least 32 px works (the pooling before the head is adaptive).
    Raises ``ValueError`` for an unknown ``arch`` (see :data:`ARCHITECTURES`) or a
    non-positive channel or class count.
    """
    try:
        builder = _BUILDERS[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}"
        ) from None
    if in_channels < 1 or num_classes < 1:
        raise ValueError(
            f"in_channels and num_classes must be positive, got {in_channels}, {num_classes}"
        )
    return builder(in_channels, num_classes)


def build_sequence_model(
    *, image_channels: int, num_classes: int, hidden_size: int = 64, num_layers: int = 1
) -> SequenceClassifier:
    """The per-track CNN-LSTM (:class:`SequenceClassifier`); its crops carry one more
    channel than ``image_channels``: the cell's mask."""
    return SequenceClassifier(
        image_channels=image_channels,
        num_classes=num_classes,
        hidden_size=hidden_size,
        num_layers=num_layers,
    )


def count_flops(
    model: nn.Module, input_shape: tuple[int, ...], *more_input_shapes: tuple[int, ...]
) -> int:
    """FLOPs of one forward pass on zero inputs of the given shapes (batch included).

    Counted by forward hooks, as 2 x multiply-accumulates, on the layers that dominate:

    - ``Conv2d``: ``out.numel() * in_channels / groups * kh * kw`` MACs;
    - ``Linear``: ``out.numel() * in_features`` MACs;
    - ``LSTM``: ``B * T * 4 * hidden * (input + hidden)`` MACs per layer and direction.

    Batch norm, activations, pooling, additions and biases are not counted (a few percent
    of a ResNet), following the convention of the published figures (ResNet-18 at
    224x224: 1.82 GMAC, reported as 1.8 "GFLOPs", here 3.64e9). Pass a batch of 1 to get
    per-patch FLOPs. Extra shapes are further inputs (the CNN-LSTM takes crops and motion).
    The model runs in eval mode under ``torch.no_grad`` and its training flag is restored.
    """
    macs = 0

    def conv_hook(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = module.kernel_size
        macs += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal macs
        macs += output.numel() * module.in_features

    def lstm_hook(module: nn.LSTM, inputs: Any, _output: Any) -> None:
        nonlocal macs
        x = inputs[0]
        steps = x.shape[0] * x.shape[1] if x.ndim == 3 else x.shape[0]
        directions = 2 if module.bidirectional else 1
        layer_in = module.input_size
        for _ in range(module.num_layers):
            macs += steps * directions * 4 * module.hidden_size * (layer_in + module.hidden_size)
            layer_in = module.hidden_size * directions

    handles: list[RemovableHandle] = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.LSTM):
            handles.append(m.register_forward_hook(lstm_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*(torch.zeros(shape) for shape in (input_shape, *more_input_shapes)))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return 2 * macs
