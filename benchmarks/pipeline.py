"""The daemon end to end (latency, replay throughput): ``python benchmarks/pipeline.py --help``.

A thin script over ``livecell.bench.pipeline`` (also ``livecell bench pipeline``).
"""

import sys

from livecell.bench.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
