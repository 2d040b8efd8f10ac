"""Nanowell stage time per frame, sub-stage by sub-stage: ``python benchmarks/nanowell.py --help``.

A thin script over ``livecell.bench.nanowell`` (also ``livecell bench nanowell``).
"""

import sys

from livecell.bench.nanowell import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
