"""A CNN-LSTM for per-track sequences (cell type; death and its pathway, as in seed 003).

Each frame of a track is a crop centred on the cell plus its segmentation mask as one more
channel. A per-frame encoder (a compact ResNet trunk, shared across frames) turns the crop
into a feature vector; that vector is concatenated with the frame's five motion
descriptors (:func:`motion_descriptors`), and an LSTM reads the sequence. The model
returns plain tensors so that it exports to ONNX with dynamic batch and sequence length:

- ``frame_logits [B, T, num_classes]``: a call at every frame, from the LSTM output there
  (for death: the per-frame death probability is the softmax of these);
- ``sequence_logits [B, num_classes]``: one call for the whole track, from the LSTM output
  at the last frame.

All tracks in a batch share the same ``T``; pad shorter ones by repeating their first frame
at the front (the LSTM reads forwards, so the last frame stays the real one).

:func:`monotone_death_penalty` is seed 003's optional training penalty: a cell does not
come back to life, so the per-frame death probability should never step down.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from livecell.engine.models.resnet import COMPACT_WIDTHS, BasicBlock, ResNet

__all__ = [
    "MOTION_DESCRIPTORS",
    "SequenceClassifier",
    "monotone_death_penalty",
    "motion_descriptors",
]

MOTION_DESCRIPTORS = (
    "speed_px_per_frame",
    "direction_rad",
    "acceleration_px_per_frame2",
    "area_change_rel",
    "eccentricity_change",
)
"""Column names of :func:`motion_descriptors`, in order, with their units."""


class SequenceClassifier(nn.Module):
    """CNN-LSTM over a track: ``forward(crops, motion) -> (frame_logits, sequence_logits)``.

    ``crops``: ``[B, T, image_channels + 1, H, W]`` (image channels, then the cell's mask);
    ``motion``: ``[B, T, 5]`` from :func:`motion_descriptors`, standardised by the caller
    (the model does not rescale pixels-per-frame against radians).
    """

    def __init__(
        self,
        *,
        image_channels: int,
        num_classes: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        encoder_widths: tuple[int, int, int, int] = COMPACT_WIDTHS,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_channels < 1 or num_classes < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                "image_channels, num_classes, hidden_size and num_layers must be positive"
            )
        self.image_channels = image_channels
        self.in_channels = image_channels + 1
        self.num_classes = num_classes
        self.encoder = ResNet(
            block=BasicBlock,
            layers=(1, 1, 1, 1),
            widths=encoder_widths,
            in_channels=self.in_channels,
            num_classes=0,
            stem="compact",
        )
        self.lstm = nn.LSTM(
            input_size=self.encoder.feature_dim + len(MOTION_DESCRIPTORS),
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.frame_head = nn.Linear(hidden_size, num_classes)
        self.sequence_head = nn.Linear(hidden_size, num_classes)

    def forward(self, crops: Tensor, motion: Tensor) -> tuple[Tensor, Tensor]:
        batch, steps = crops.shape[0], crops.shape[1]
        frames = crops.flatten(0, 1)  # [B*T, C+1, H, W]
        features = self.encoder.forward_features(frames).reshape(batch, steps, -1)
        hidden, _ = self.lstm(torch.cat([features, motion], dim=-1))  # [B, T, hidden]
        frame_logits: Tensor = self.frame_head(hidden)
        sequence_logits: Tensor = self.sequence_head(hidden[:, -1])
        return frame_logits, sequence_logits


def monotone_death_penalty(death_prob: Tensor) -> Tensor:
    """Mean of ``relu(p[t] - p[t+1])`` over a batch of per-frame death probabilities.

    ``death_prob``: ``[B, T]`` in [0, 1]. Zero when every track's probability is
    non-decreasing, positive as soon as one steps down (seed 003's penalty on downward
    steps; add it to the loss with a weight). Zero for ``T < 2``. Differentiable.
    """
    if death_prob.ndim != 2:
        raise ValueError(f"death_prob must be [B, T], got shape {tuple(death_prob.shape)}")
    if death_prob.shape[1] < 2:
        return death_prob.sum() * 0.0
    return torch.relu(death_prob[:, :-1] - death_prob[:, 1:]).mean()


def motion_descriptors(
    centroids: ArrayLike, areas: ArrayLike, eccentricities: ArrayLike
) -> NDArray[np.float32]:
    """Five motion descriptors per frame of a track: ``[T, 5]`` float32, columns as named in
    :data:`MOTION_DESCRIPTORS`.

    Inputs, one row per frame in time order: ``centroids [T, 2]`` as (y, x) = (row, column)
    in pixels; ``areas [T]`` in square pixels (positive); ``eccentricities [T]`` in [0, 1).
    Columns:

    0. speed, pixels per frame: distance between consecutive centroids;
    1. direction, radians in (-pi, pi]: ``atan2(dy, dx)`` of that step in image coordinates
       (x to the right, y down), 0 for a cell that did not move;
    2. acceleration, pixels per frame squared: change of speed from the previous step;
    3. area change, dimensionless: ``(area[t] - area[t-1]) / area[t-1]``;
    4. eccentricity change: ``ecc[t] - ecc[t-1]``.

    Frame 0 has no previous step: speed and direction copy frame 1's (so a cell moving at
    constant velocity has constant speed throughout), acceleration is 0 at frames 0 and 1,
    area and eccentricity changes are 0 at frame 0. A single-frame track is all zeros.
    Divide by the frame interval and multiply by the pixel size for physical units.
    """
    c = np.asarray(centroids, dtype=np.float64)
    a = np.asarray(areas, dtype=np.float64)
    e = np.asarray(eccentricities, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"centroids must be [T, 2], got shape {c.shape}")
    n = c.shape[0]
    if a.shape != (n,) or e.shape != (n,):
        raise ValueError(
            f"areas and eccentricities must be [T] with T={n}, got {a.shape} and {e.shape}"
        )
    if n and np.any(a <= 0):
        raise ValueError("areas must be positive")
    out = np.zeros((n, len(MOTION_DESCRIPTORS)), dtype=np.float64)
    if n < 2:
        return out.astype(np.float32)
    step = np.diff(c, axis=0) + 0.0  # [T-1, 2] as (dy, dx); + 0.0 turns -0.0 into 0.0
    speed = np.hypot(step[:, 0], step[:, 1])
    direction = np.where(speed > 0, np.arctan2(step[:, 0], step[:, 1]), 0.0)
    out[1:, 0] = speed
    out[0, 0] = speed[0]
    out[1:, 1] = direction
    out[0, 1] = direction[0]
    out[2:, 2] = np.diff(speed)
    out[1:, 3] = np.diff(a) / a[:-1]
    out[1:, 4] = np.diff(e)
    return out.astype(np.float32)
