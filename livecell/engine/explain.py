"""Class activation maps (Grad-CAM) for a patch or a whole frame, as PNG overlays.

Grad-CAM (Selvaraju et al. 2017): the gradient of the chosen class's logit with
respect to the last convolutional stage (``layer4``; ``shared`` in the fusion
net), averaged over space, weights that stage's feature maps; their positive sum,
upsampled to the patch, shows where the evidence for that class lies. A frame is
tiled into the model's patch size and each patch gets its own map (patches are
independent in eval mode, so one backward pass serves a whole batch). A patch
with a NaN or infinite pixel is not classified, as in the daemon: its class is
``NOT_FINITE`` and its map empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch import nn

FloatArray = npt.NDArray[np.float32]

CAM_STAGES = ("layer4", "shared")  # the last convolutional stage, by model family
NOT_FINITE = -1  # the class of a patch with a NaN or infinite pixel: not classified


@dataclass(frozen=True)
class PatchExplanation:
    """Grad-CAM heat maps in [0, 1] and the class each explains, for a batch of patches."""

    heatmaps: FloatArray  # [N, H, W]
    class_indices: npt.NDArray[np.int64]  # [N] the class explained
    probabilities: FloatArray  # [N, K]

    @property
    def predicted(self) -> npt.NDArray[np.int64]:
        """The model's class per patch (the one explained unless another was asked for)."""
        predicted: npt.NDArray[np.int64] = self.probabilities.argmax(axis=1).astype(np.int64)
        return predicted


def grad_cam(
    model: nn.Module, patches: FloatArray, *, class_index: int | None = None
) -> PatchExplanation:
    """Grad-CAM for normalised ``patches`` [N, C, H, W]; the predicted class unless given."""
    stage = _cam_stage(model)
    captured: list[torch.Tensor] = []
    handle = stage.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        model.eval()
        inputs = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
        logits = model(inputs)
        features = captured[0]
        chosen = (
            logits.argmax(dim=1)
            if class_index is None
            else torch.full((len(inputs),), class_index, dtype=torch.long)
        )
        score = logits.gather(1, chosen[:, None]).sum()
        (gradients,) = torch.autograd.grad(score, features)
    finally:
        handle.remove()
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * features).sum(dim=1)).detach().numpy()
    height, width = patches.shape[-2:]
    heatmaps = np.stack([_normalised(cv2.resize(cam, (width, height))) for cam in cams])
    probabilities = torch.softmax(logits.detach(), dim=1).numpy()
    return PatchExplanation(
        heatmaps.astype(np.float32), chosen.numpy().astype(np.int64), probabilities
    )


def _cam_stage(model: nn.Module) -> nn.Module:
    for name in CAM_STAGES:
        stage = getattr(model, name, None)
        if isinstance(stage, nn.Module):
            return stage
    raise ValueError(f"{type(model).__name__} has no {' or '.join(CAM_STAGES)} stage to explain")


def explain_image(
    model: nn.Module,
    image: FloatArray,
    *,
    patch_size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    class_index: int | None = None,
    batch: int = 32,
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """A frame [C, H, W] tiled into patches: its heat map [H', W'] and the model's class per
    patch [rows, cols] (``NOT_FINITE`` for a patch with a NaN or infinite pixel).

    ``H'`` and ``W'`` are the tiled extent (the right and bottom remainders are left out).
    The maps are of ``class_index`` where given, else of each patch's own class.
    """
    ph, pw = patch_size
    rows, cols = image.shape[1] // ph, image.shape[2] // pw
    if rows == 0 or cols == 0:
        raise ValueError(f"image {image.shape[1:]} is smaller than one {ph} x {pw} patch")
    scale = np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]
    tiles = (
        image[:, : rows * ph, : cols * pw]
        .reshape(image.shape[0], rows, ph, cols, pw)
        .transpose(1, 3, 0, 2, 4)
        .reshape(rows * cols, image.shape[0], ph, pw)
    )
    tiles = ((tiles - scale[0]) / scale[1]).astype(np.float32)
    finite = np.isfinite(tiles).all(axis=(1, 2, 3))
    tiles[~finite] = 0.0  # a NaN would reach every gradient of its batch
    maps, classes = [], []
    for start in range(0, len(tiles), batch):
        explanation = grad_cam(model, tiles[start : start + batch], class_index=class_index)
        maps.append(explanation.heatmaps)
        classes.append(explanation.predicted)
    heatmaps, predicted = np.concatenate(maps), np.concatenate(classes)
    heatmaps[~finite], predicted[~finite] = 0.0, NOT_FINITE
    heat = heatmaps.reshape(rows, cols, ph, pw).transpose(0, 2, 1, 3)
    return heat.reshape(rows * ph, cols * pw), predicted.reshape(rows, cols)


def overlay_png(
    image: FloatArray, heatmap: FloatArray, classes: npt.NDArray[np.int64], names: list[str]
) -> npt.NDArray[np.uint8]:
    """A BGR picture: the image in grey, the heat map in colour on top, class names per patch
    (``classes`` as :func:`explain_image` gives them)."""
    plane = image[0, : heatmap.shape[0], : heatmap.shape[1]]
    shown = plane[np.isfinite(plane)]
    lo, hi = np.percentile(shown, (0.5, 99.5)) if shown.size else (0.0, 1.0)
    grey = np.clip(np.nan_to_num((plane - lo) / max(float(hi - lo), 1e-6) * 255), 0, 255)
    grey = grey.astype(np.uint8)
    colour = cv2.applyColorMap((heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)
    picture = cv2.addWeighted(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), 0.6, colour, 0.4, 0)
    rows, cols = classes.shape
    ph, pw = heatmap.shape[0] // rows, heatmap.shape[1] // cols
    for r in range(rows):
        for c in range(cols):
            cv2.rectangle(
                picture, (c * pw, r * ph), ((c + 1) * pw - 1, (r + 1) * ph - 1), (255, 255, 255), 1
            )
            cv2.putText(
                picture,
                "not finite" if classes[r, c] == NOT_FINITE else names[int(classes[r, c])],
                (c * pw + 3, r * ph + 14),
                cv2.FONT_HERSHEY_PLAIN,
                0.9,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    result: npt.NDArray[np.uint8] = np.asarray(picture, dtype=np.uint8)
    return result


def _normalised(cam: FloatArray) -> FloatArray:
    top = float(cam.max(initial=0.0))
    return cam / top if top > 0 else np.zeros_like(cam)
