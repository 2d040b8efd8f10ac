"""Simulator speed per time point: ``python benchmarks/simulate.py --help``.

A thin script over ``livecell.bench.simulate`` (also ``livecell bench simulate``).
"""

import sys

from livecell.bench.simulate import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
