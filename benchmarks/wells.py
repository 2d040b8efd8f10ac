"""Well lattice fit and drift speed: ``python benchmarks/wells.py --help``.

A thin script over ``livecell.bench.wells`` (also ``livecell bench wells``).
"""

import sys

from livecell.bench.wells import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
