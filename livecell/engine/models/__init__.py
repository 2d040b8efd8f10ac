"""Model definitions in plain torch: patch ResNets, a compact ResNet, a CNN-LSTM, fusion.

Import this package only where torch is installed (training, export, the torch backend);
the daemon runs exported ONNX models and never imports it. Build models by name with
:func:`build_model` (names in :data:`ARCHITECTURES`) and the sequence model with
:func:`build_sequence_model`; :func:`count_flops` gives the FLOPs the benchmark reports.
"""

from livecell.engine.models.fusion import IntermediateFusionNet
from livecell.engine.models.registry import (
    ARCHITECTURES,
    build_model,
    build_sequence_model,
    count_flops,
)
from livecell.engine.models.resnet import (
    ResNet,
    compact,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
)
from livecell.engine.models.sequence import (
    MOTION_DESCRIPTORS,
    SequenceClassifier,
    monotone_death_penalty,
    motion_descriptors,
)

__all__ = [
    "ARCHITECTURES",
    "MOTION_DESCRIPTORS",
    "IntermediateFusionNet",
    "ResNet",
    "SequenceClassifier",
    "build_model",
    "build_sequence_model",
    "compact",
    "count_flops",
    "monotone_death_penalty",
    "motion_descriptors",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
]
