"""Nanowell cell segmentation, U-Net vs classical: ``python benchmarks/segmentation.py --help``.

A thin script over ``livecell.bench.segmentation`` (also ``livecell bench segmentation``).
"""

import sys

from livecell.bench.segmentation import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
