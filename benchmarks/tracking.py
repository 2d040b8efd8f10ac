"""Tracking benchmarks: ``python benchmarks/tracking.py --help``.

Smoothing vs CVXPY (default), the per-well tracker on ground-truth masks beside laptrack,
and the tracker's scale over a chip (``--sections truth laptrack scale`` or ``all``).
A thin script over ``livecell.bench.tracking`` (also ``livecell bench tracking``).
"""

import sys

from livecell.bench.tracking import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
