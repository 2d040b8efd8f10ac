"""Tracking: following each cell of a well through time (issue 5, being built).

``smoothing`` owns the trajectory maths of seed 003 made exact and fast: gap filling
(least squared velocity between measured anchors) and global smoothing (the convex
QP ``sum ||x_t - m_t||^2 + lambda sum ||x_{t+1} - 2 x_t + x_{t-1}||^2``) solved as a
banded linear system, offline over a whole track or online as a fixed-lag smoother.
"""
