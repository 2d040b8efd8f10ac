"""Per-instance appearance measured from the image beside the labels, and carried along."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from livecell.tracking.observations import APPEARANCE_FEATURES, Observations, measure, split_by_box


@settings(max_examples=40, deadline=None)
@given(
    st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
        lambda shape: st.tuples(
            arrays(np.int32, shape, elements=st.integers(0, 5)),
            arrays(np.uint16, shape, elements=st.integers(1, 4000)),
        )
    )
)
def test_appearance_is_mean_and_std_of_median_normalised_pixels(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    labels, image = pair
    obs = measure(labels, image)
    plain = measure(labels)
    assert plain.appearance is None
    np.testing.assert_array_equal(obs.label, plain.label)
    if len(obs) == 0:
        return
    assert obs.appearance is not None
    assert obs.appearance.shape == (len(obs), len(APPEARANCE_FEATURES))
    z = image.astype(np.float64) / np.median(image[::2, ::2])  # a quarter of the pixels
    for i, v in enumerate(obs.label.tolist()):
        inside = z[labels == v]
        # the std comes from E[z^2] - E[z]^2: a flat cell leaves a rounding residue whose
        # square root is ~1e-8
        assert obs.appearance[i] == pytest.approx([inside.mean(), inside.std()], abs=1e-7)


def test_appearance_ignores_exposure() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[2:8, 2:8], labels[10:18, 10:18] = 1, 2
    image = np.random.default_rng(1).uniform(500, 1500, labels.shape)
    once, brighter = measure(labels, image), measure(labels, image * 3.7)
    assert once.appearance is not None
    assert brighter.appearance is not None
    np.testing.assert_allclose(once.appearance, brighter.appearance, rtol=1e-12)


def test_an_image_of_another_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="image must have the labels' shape"):
        measure(np.ones((4, 4), np.int32), np.ones((4, 5)))


def test_appearance_rows_follow_take_shift_and_split() -> None:
    obs = Observations.from_arrays(
        [1, 2, 3], [5.0, 50.0, 15.0], [5.0, 5.0, 8.0], [10, 20, 30],
        appearance=[[1.0, 0.1], [2.0, 0.2], [3.0, 0.3]],
    )  # fmt: skip
    assert obs.take(np.array([2, 0])).appearance.tolist() == [[3.0, 0.3], [1.0, 0.1]]  # type: ignore[union-attr]
    assert obs.shifted(1.0, 1.0).appearance is obs.appearance
    parts = split_by_box(obs, [[0, 0, 20, 20], [40, 0, 60, 20]])
    assert [p.appearance.tolist() for p in parts] == [  # type: ignore[union-attr]
        [[1.0, 0.1], [3.0, 0.3]],
        [[2.0, 0.2]],
    ]
    with pytest.raises(ValueError, match="appearance"):
        Observations(obs.label, obs.x_px, obs.y_px, obs.area_px, obs.bbox, np.zeros((2, 2)))
