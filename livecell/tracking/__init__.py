"""Tracking: following each cell of a well through time (seed 003, made exact and online).

- ``observations``: what a label image says about its cells (centroid, area, box,
  touching pairs), measured in one vectorised pass and split by well.
- ``nanowell``: ``NanowellTracker``, one per well: Hungarian linking on distance,
  velocity prediction and shape, containment (a missing cell is a missed detection),
  gap filling and mitosis.
- ``contact_score``: the pairs of instances near enough to touch, four measurements
  of each and the patch around the point where they come closest; a small logistic
  model over the measurements.
- ``contact_net``: which of those pairs touch, by the bundled contact CNN on their
  patches (every pair of a frame in one batch, through an engine backend).
- ``contacts``: contact starts and ends with one frame of hysteresis.
- ``smoothing``: gap filling (least squared velocity) and the convex smoothing QP
  ``sum ||x_t - m_t||^2 + lambda sum ||x_{t+1} - 2 x_t + x_{t-1}||^2`` solved as a
  banded linear system, offline over a whole track or online as a fixed-lag smoother.
- ``motion``, ``cell_crops``: what the per-track sequence models read of a track.
- ``arrest``: the frame a crawling cell stood still (refines a death's onset).
- ``ctc`` and ``command``: Cell Tracking Challenge results and ``livecell track``.
"""
