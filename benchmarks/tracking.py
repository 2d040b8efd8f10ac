"""Convex smoothing, banded solve vs CVXPY: ``python benchmarks/tracking.py --help``.

A thin script over ``livecell.bench.tracking`` (also ``livecell bench tracking``).
"""

import sys

from livecell.bench.tracking import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
