"""From frame to picture: downscaling, outlines, patch tints, the mosaic of patch crops."""

from __future__ import annotations

import numpy as np

from livecell.analysis.overlay import PatchOverlay
from livecell.dashboard.render import PATCH_COLOURS, render_frame
from livecell.dashboard.views import make_view
from livecell.frames import Frame, FrameKey


def test_a_z_stack_becomes_a_downscaled_view_with_its_patch_grid_and_mosaic() -> None:
    pixels = np.zeros((3, 2, 400, 800), np.float32)  # ZCYX
    pixels[1, 0, :200, :200] = 10.0  # channel 0, one plane: patch (0, 0) bright in the MIP
    frame = Frame(FrameKey("a", "P", 4), pixels, "ZCYX", "zmq", completed_at=0.0)
    kept = np.array([[True, False, False, False, True], [False] * 5])
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    overlay = PatchOverlay(4, 160, 2, 5, ("live_control", "necrosis"), kept, probs)
    parts = make_view(frame, overlay, max_side_px=400, crop_px=16)

    view = parts.view
    assert view.image.shape == (200, 400)
    assert view.image.dtype == np.uint8
    assert view.scale == 0.5
    assert view.grid is not None
    assert view.grid.probabilities == {
        (0, 0): (np.float32(0.9).item(), np.float32(0.1).item()),
        (0, 4): (np.float32(0.2).item(), np.float32(0.8).item()),
    }
    assert parts.mosaic is not None
    assert parts.mosaic.shape == (2 * 16, 5 * 16)
    assert parts.mosaic[:16, :16].mean() > parts.mosaic[:16, 16:32].mean()

    bgr = render_frame(
        view, well_states={}, track_states={}, patch_states=[[1, -1, -1, -1, 0], [-1] * 5]
    )
    untouched = np.repeat(view.image[..., None], 3, axis=2)
    assert (bgr[161:, :] == untouched[161:, :]).all()  # below the grid's 320 of 400 px
    necrosis = np.array([0x49, 0x51, 0xF8])  # BGR of PATCH_COLOURS["necrosis"]
    assert PATCH_COLOURS["necrosis"] == "#f85149"
    tinted = bgr[40, 40].astype(int)
    plain = untouched[40, 40].astype(int)
    assert np.abs(tinted - necrosis).sum() < np.abs(plain - necrosis).sum()
