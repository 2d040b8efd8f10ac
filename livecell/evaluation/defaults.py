"""The matching thresholds' defaults, in a module light enough for the CLI's parser to import."""

from __future__ import annotations

from typing import Final

DEFAULT_MAX_DISTANCE_PX: Final = 15.0  # tracking: about an effector's radius at 0.325 um/px
DEFAULT_MAX_ONSET_GAP: Final = 20  # deaths without a tracks file, in frames
DEFAULT_MIN_IOU: Final = 0.5  # contacts: interval IoU
DEFAULT_CONTACT_GAP_FRAMES: Final = 1  # contacts: the daemon's hysteresis, applied to the truth
