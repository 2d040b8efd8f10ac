"""Inference backends x models x batch sizes: ``python benchmarks/engine.py --help``.

A thin script over ``livecell.bench.engine`` (also ``livecell bench engine``).
"""

import sys

from livecell.bench.engine import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
