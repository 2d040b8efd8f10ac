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

import torch
from torch import Tensor, nn

from livecell.engine.models.resnet import COMPACT_WIDTHS, BasicBlock, ResNet
from livecell.tracking.motion import MOTION_DESCRIPTORS, motion_descriptors

__all__ = [
    "MOTION_DESCRIPTORS",
    "SequenceClassifier",
    "monotone_death_penalty",
    "motion_descriptors",
]


class SequenceClassifier(nn.Module):
    """CNN-LSTM over a track: ``forward(crops, motion) -> (frame_logits, sequence_logits)``.

    ``crops``: ``[B, T, image_channels + 1, H, W]`` (image channels, then the cell's mask);
    ``motion``: ``[B, T, 5]`` from :func:`motion_descriptors`, standardised by the caller
    (the model does not rescale pixels-per-frame against radians).

    ``bidirectional``: the LSTM also reads the window backwards, so the per-frame call at
    step ``t`` sees the whole window (the onset of a death can be placed in hindsight);
    the call at the window's last frame and the sequence call still see only the past.
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
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if image_channels < 1 or num_classes < 1 or hidden_size < 1 or num_layers < 1:
            raise ValueError(
                "image_channels, num_classes, hidden_size and num_layers must be positive"
            )
        self.image_channels = image_channels
        self.in_channels = image_channels + 1
        self.num_classes = num_classes
        self.bidirectional = bidirectional
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
            bidirectional=bidirectional,
        )
        out_size = hidden_size * (2 if bidirectional else 1)
        self.frame_head = nn.Linear(out_size, num_classes)
        self.sequence_head = nn.Linear(out_size, num_classes)

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
