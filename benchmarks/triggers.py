"""Trigger cost, frame latency with dead or hanging peers: ``python benchmarks/triggers.py --help``.

A thin script over ``livecell.bench.triggers`` (also ``livecell bench triggers``).
"""

import sys

from livecell.bench.triggers import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
