"""Frame latency with 10 dashboard tabs open against none: ``benchmarks/dashboard.py --help``.

A thin script over ``livecell.bench.dashboard`` (issue 8, criterion 3; docs/dashboard.md).
"""

import sys

from livecell.bench.dashboard import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
